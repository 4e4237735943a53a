"""Pure parts of shared/: signed links, log masking, payload validation."""

import json

import pytest
from pydantic import ValidationError

from shared.contracts import ConsentCommand, FlowDefinition, ProfileEvent
from shared.contracts.flows import FlowDeleted, parse_flow_record
from shared.links import InvalidToken, sign, verify
from shared.logging import mask
from shared.mail import compose, message_id


def test_c12_token_round_trip_and_tampering() -> None:
    token = sign("s3cret", "confirm", {"a": "acme", "p": "p-1", "c": "email"})
    assert verify("s3cret", "confirm", token) == {"a": "acme", "p": "p-1", "c": "email"}
    _body, mac = token.split(".")
    forged = sign("other", "confirm", {"a": "acme", "p": "p-2", "c": "email"})
    for bad in (
        forged,  # another secret
        forged.split(".")[0] + "." + mac,  # claims swapped under the old signature
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "garbage",
        "",
    ):
        with pytest.raises(InvalidToken):
            verify("s3cret", "confirm", bad)
    with pytest.raises(InvalidToken):  # a confirm token is not an unsubscribe token
        verify("s3cret", "unsubscribe", token)


def test_x4_logs_mask_emails_and_phone_numbers() -> None:
    line = "ada.lovelace@example.com texted from +1 555 555 0100 at 2026-11-23T10:00:00Z"
    masked = mask(line)
    assert "lovelace" not in masked and "a***@example.com" in masked
    assert "555 555" not in masked and masked.count("***00") == 1
    assert "2026-11-23T10:00:00Z" in masked  # timestamps are not phone numbers


def test_x1_inputs_reject_wrong_types_and_ignore_unknown_fields() -> None:
    good = {
        "event_id": "e-1",
        "account_id": "acme",
        "metric": "Left NPS Score",
        "profile": {"id": "p-1"},
        "time": "2026-11-23T10:00:00Z",
        "extra": {"ignored": True},
    }
    assert ProfileEvent.model_validate(good).event_id == "e-1"
    for broken in (
        {**good, "time": "yesterday"},
        {**good, "time": "2026-11-23T10:00:00"},  # RFC 3339 needs a zone
        {k: v for k, v in good.items() if k != "account_id"},
        {**good, "profile": "p-1"},
    ):
        with pytest.raises(ValidationError):
            ProfileEvent.model_validate(broken)
    with pytest.raises(ValidationError):
        ConsentCommand.model_validate({**good, "action": "subscribe", "channel": "fax"})


def test_f1_tombstone_parses_as_deletion_and_bad_key_fails() -> None:
    assert parse_flow_record(b"acme:nps", None) == FlowDeleted(account_id="acme", flow_id="nps")
    with pytest.raises(ValueError):
        parse_flow_record(b"no-colon", None)
    flow = {
        "account_id": "acme",
        "flow_id": "nps",
        "version": 1,
        "name": "n",
        "trigger": {"type": "list", "list_id": "L1"},
        "steps": [{"id": "s", "type": "delay", "seconds": 5}],
    }
    assert isinstance(parse_flow_record(b"acme:nps", json.dumps(flow).encode()), FlowDefinition)


def test_a9_message_id_is_deterministic_and_unsubscribe_headers_are_set() -> None:
    assert message_id("alert", "a-1", "x@y.test", domain="d.test") == message_id(
        "alert", "a-1", "x@y.test", domain="d.test"
    )
    assert message_id("alert", "a-1", "x@y.test", domain="d.test") != message_id(
        "alert", "a-2", "x@y.test", domain="d.test"
    )
    msg = compose(
        mail_from="a@acme.test",
        to="b@acme.test",
        subject="hi\r\nBcc: evil@x.test",
        text="t",
        msg_id="<1@x>",
        unsubscribe_url="http://h/u?token=t",
    )
    assert msg["List-Unsubscribe"] == "<http://h/u?token=t>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Bcc"] is None  # header injection through the subject is neutralised
