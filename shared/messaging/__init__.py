"""Kafka at the edge of every service: FastStream subscribers (`edge`), the batch they
hand over (`batches`), record headers (`headers`), client options (`clients`) and topic
creation (`admin`)."""
