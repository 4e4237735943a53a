"""The only payloads on Kafka: pydantic models for every topic, and the topic names."""

from shared.contracts.base import SCHEMA_VERSION, Message, Profile, utcnow
from shared.contracts.flows import FlowDefinition, flow_key
from shared.contracts.inputs import (
    ConsentCommand,
    ProfileEvent,
    ReviewDecision,
    Scope,
    SmsInbound,
    SuppressionCommand,
)
from shared.contracts.outputs import (
    AlertContent,
    AlertOutcome,
    AlertRequested,
    ChannelState,
    ConsentChanged,
    ConsentState,
    DeadLetter,
    FlowActivity,
    MessageRequested,
    SmsOutbound,
    SuppressionChanged,
)
from shared.contracts.privacy import PrivacyRequest, PrivacyResult
from shared.contracts.receipts import ConsentReceipt

__all__ = [
    "SCHEMA_VERSION",
    "AlertContent",
    "AlertOutcome",
    "AlertRequested",
    "ChannelState",
    "ConsentChanged",
    "ConsentCommand",
    "ConsentReceipt",
    "ConsentState",
    "DeadLetter",
    "FlowActivity",
    "FlowDefinition",
    "Message",
    "MessageRequested",
    "PrivacyRequest",
    "PrivacyResult",
    "Profile",
    "ProfileEvent",
    "ReviewDecision",
    "Scope",
    "SmsInbound",
    "SmsOutbound",
    "SuppressionChanged",
    "SuppressionCommand",
    "flow_key",
    "utcnow",
]
