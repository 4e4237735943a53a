"""Every Kafka topic consentflow reads or writes, named once.

Dead-letter topics are `<topic>.dlq` (X1); `dlq()` builds the name so that no module spells
the suffix itself.

`ABOUT` holds what the code that reads and writes a topic does not say but a producer or
consumer outside the project needs: what a record's key is and one line on what a record
means. The published AsyncAPI documents (`tools.contracts_gen`) carry both.
"""

from typing import NamedTuple

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


class About(NamedTuple):
    """What the published contract says of a topic beyond its payload."""

    key: str
    description: str


ABOUT: dict[str, About] = {
    PROFILE_EVENTS: About(
        "profile_id", "Something a profile did; may enter the profile into metric flows."
    ),
    CONSENT_COMMANDS: About(
        "profile_id", "A request to subscribe, unsubscribe or re-subscribe a profile."
    ),
    SUPPRESSION_COMMANDS: About(
        "profile_id",
        "A request to suppress or unsuppress a profile, or a bounce/delivery report.",
    ),
    SMS_INBOUND: About(
        "phone number", "A text message a profile sent; keywords change SMS consent."
    ),
    FLOW_DEFINITIONS: About(
        "account_id:flow_id",
        "A saved flow (compacted topic). A null value under the key deletes the flow;"
        " a higher version replaces a lower one.",
    ),
    REVIEW_DECISIONS: About(
        "alert_id", "An operator's decision on an alert held in manual review."
    ),
    PRIVACY_REQUESTS: About(
        "profile_id (or the email or phone number named)",
        "A data-subject request: export or erase what is held about a person (P1).",
    ),
    CONSENT_CHANGES: About(
        "profile_id", "A subscription event with the profile's full consent state after it."
    ),
    SUPPRESSION_CHANGES: About(
        "profile_id", "A change of a profile's suppressions, with every suppression in force."
    ),
    SMS_OUTBOUND: About(
        "phone number", "A reply to an inbound SMS keyword, for the SMS gateway to send."
    ),
    ALERT_REQUESTS: About(
        "profile_id",
        "An internal alert to send, with the alert action as the flow version saved it.",
    ),
    MESSAGE_REQUESTS: About("profile_id", "A consent-checked email or SMS to the profile itself."),
    FLOW_ACTIVITY: About("profile_id", "What happened to a profile at a flow step."),
    ALERT_OUTCOMES: About(
        "profile_id",
        "The result of one internal alert: sent, skipped (with reason) or failed.",
    ),
    PRIVACY_RESULTS: About(
        "request_id",
        "One service's part of a data-subject request: the export, or what was erased.",
    ),
}


def about(topic: str) -> About:
    """What the contract says of `topic`; a dead-letter topic keeps its source's key."""
    for source in INPUT_TOPICS + OUTPUT_TOPICS:
        if topic == dlq(source):
            return About(
                "key of the record it was made from, as it came",
                f"Records of {source} that could not be accepted, with the original bytes"
                " (base64), the error and the source offset (X1).",
            )
    return ABOUT[topic]
