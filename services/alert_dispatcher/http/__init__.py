"""The dispatcher's HTTP side, one module per resource; `api.py` assembles the routes."""
