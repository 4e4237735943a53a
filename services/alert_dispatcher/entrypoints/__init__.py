"""Where the dispatcher meets the outside world: its Kafka subscribers and publishers
(`kafka.py`); its HTTP routes are in `http/`."""
