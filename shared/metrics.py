"""Prometheus metrics shared by the services (served on /metrics, X4)."""

from prometheus_client import Counter, Histogram

CONSUMED = Counter(
    "consentflow_messages_consumed_total", "Messages read from Kafka", ["consumer", "topic"]
)
DEAD_LETTERS = Counter(
    "consentflow_dead_letters_total", "Messages sent to a dead-letter topic", ["consumer", "topic"]
)
DUPLICATES = Counter(
    "consentflow_duplicates_skipped_total",
    "Redelivered messages skipped by the inbox",
    ["consumer"],
)
BATCH_SECONDS = Histogram(
    "consentflow_batch_seconds", "Time to handle one consumed batch", ["consumer"]
)
OUTBOX_PUBLISHED = Counter("consentflow_outbox_published_total", "Outbox rows published")
MAILS = Counter("consentflow_mails_total", "Mails handed to SMTP, by result", ["kind", "result"])
