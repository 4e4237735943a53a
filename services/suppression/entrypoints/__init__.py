"""How the suppression service is reached from outside: its Kafka subscribers and
publishers (`kafka.py`); its HTTP API is in `services/suppression/http/`."""
