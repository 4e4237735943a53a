"""How the consent service is reached: its Kafka subscribers and publishers."""
