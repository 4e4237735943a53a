"""Every Kafka topic consentflow reads or writes, named once.

Dead-letter topics are `<topic>.dlq` (X1); `dlq()` builds the name so that no module spells
the suffix itself.
"""

PROFILE_EVENTS = "profile-events"
CONSENT_COMMANDS = "consent-commands"
SUPPRESSION_COMMANDS = "suppression-commands"
SMS_INBOUND = "sms-inbound"
FLOW_DEFINITIONS = "flow-definitions"
REVIEW_DECISIONS = "review-decisions"
PRIVACY_REQUESTS = "privacy-requests"

CONSENT_CHANGES = "consent-changes"
SUPPRESSION_CHANGES = "suppression-changes"
SMS_OUTBOUND = "sms-outbound"
ALERT_REQUESTS = "alert-requests"
MESSAGE_REQUESTS = "message-requests"
FLOW_ACTIVITY = "flow-activity"
ALERT_OUTCOMES = "alert-outcomes"
PRIVACY_RESULTS = "privacy-results"

# Which dead letters `consentflow dlq replay` has re-published (compacted; operator tool).
DLQ_REPLAYS = "dlq-replays"

INPUT_TOPICS = (
    PROFILE_EVENTS,
    CONSENT_COMMANDS,
    SUPPRESSION_COMMANDS,
    SMS_INBOUND,
    FLOW_DEFINITIONS,
    REVIEW_DECISIONS,
    PRIVACY_REQUESTS,
)
OUTPUT_TOPICS = (
    CONSENT_CHANGES,
    SUPPRESSION_CHANGES,
    SMS_OUTBOUND,
    ALERT_REQUESTS,
    MESSAGE_REQUESTS,
    FLOW_ACTIVITY,
    ALERT_OUTCOMES,
    PRIVACY_RESULTS,
)
COMPACTED_TOPICS = frozenset({FLOW_DEFINITIONS, DLQ_REPLAYS})


def dlq(topic: str) -> str:
    """The dead-letter topic of `topic` (X1)."""
    return f"{topic}.dlq"


ALL_TOPICS = (
    INPUT_TOPICS
    + OUTPUT_TOPICS
    + tuple(dlq(t) for t in INPUT_TOPICS + OUTPUT_TOPICS)
    + (DLQ_REPLAYS,)
)
