"""Prometheus metrics shared by the services (served on /metrics, X4)."""

from prometheus_client import Counter, Gauge, Histogram

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
BAD_HEADERS = Counter(
    "consentflow_bad_headers_total",
    "Records whose headers were refused (dead-lettered) or ignored, by reason",
    ["consumer", "topic", "reason"],
)
UNDECODABLE = Counter(
    "consentflow_undecodable_records_total",
    "Offsets skipped because their record batch could not be decoded (dead-lettered by reference)",
    ["consumer", "topic"],
)
CONSUMER_LAG = Gauge(
    "consentflow_consumer_lag",
    "Records on a partition not yet applied by this consumer",
    ["consumer", "topic", "partition"],
)
LAST_BATCH = Gauge(
    "consentflow_consumer_last_batch_timestamp_seconds",
    "Unix time of a consumer's last applied batch",
    ["consumer"],
)
