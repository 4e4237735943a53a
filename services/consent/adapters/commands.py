"""`consent-commands` records validated into slim command records: plain dicts of the
fields of `ConsentCommand`, without the model objects (`shared.contracts.records`).

Decoding a command into a `ConsentCommand` built three frozen models (the command, its
profile, its scope), each with its field set, and the use case then dumped the profile
back into a dict: about a third of a command's decoding, and six more objects per
command held for the whole batch (which the garbage collector walks while the batch is
decided). The use case takes both forms.

`tests/unit/consent/test_command_records.py` holds records equal to the model's dump and
the use case's output (payload bytes, history, receipts, dead letters) equal for records
and models.
"""

from __future__ import annotations

from shared.contracts import ConsentCommand
from shared.contracts.base import Profile
from shared.contracts.inputs import Scope
from shared.contracts.records import SlimParser, record_type

SCOPE_RECORD = record_type(Scope, "ScopeRecord")
PROFILE_RECORD = record_type(Profile, "ProfileRecord")
COMMAND_RECORD = record_type(
    ConsentCommand, "CommandRecord", {"profile": PROFILE_RECORD, "scope": SCOPE_RECORD}
)

parse_command = SlimParser(ConsentCommand, COMMAND_RECORD)
"""The command a record carries, as a record; raises the model's error if invalid."""
