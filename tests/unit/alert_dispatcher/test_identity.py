"""I1 and X2 in the dispatcher's use cases over the in-memory work: a recipient's opt-in
is one per account and address however the address is spelled; mails go to the spelling
the flow wrote; derived ids cannot collide."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, example, given, settings

from services.alert_dispatcher import handlers
from services.alert_dispatcher.adapters.memory import MemoryAlertWork
from services.alert_dispatcher.domain.recipients import (
    alert_addresses,
    on_confirm,
    on_unsubscribe,
    recipient_key,
)
from services.alert_dispatcher.handlers import ALERT, CONFIRMATION
from shared.contracts import PrivacyRequest
from shared.privacy_requests import message_id
from tests.unit.alert_dispatcher.test_handlers import (
    ACCT,
    _dispatch,
    _flow,
    _queued,
    _request,
    _save,
    _work,
)
from tests.unit.suppression.spellings import spellings

NFC = "Lead@Bücher.de"
NFD = unicodedata.normalize("NFD", "LEAD@BÜCHER.DE")
PUNY = "lead@xn--bcher-kva.de"
KEY = "lead@xn--bcher-kva.de"


def _mails(work: MemoryAlertWork, kind: str) -> list:
    return [m for m in work.tables.mails.values() if m.kind == kind]


async def _click(work: MemoryAlertWork, spelling: str, decide) -> None:
    # A link binds the key; one minted before keys were normal forms binds a spelling.
    current = (await work.recipients.find(ACCT, [recipient_key(spelling)])).get(KEY)
    await handlers.click(work, ACCT, recipient_key(spelling), current.generation, decide)


def test_i1_every_spelling_of_an_address_is_one_recipient_mailed_as_first_written() -> None:
    assert alert_addresses([NFC, NFD, f"  {PUNY} "]) == {KEY: "Lead@xn--bcher-kva.de"}
    assert alert_addresses(["Ada@Example.TEST"]) == {"ada@example.test": "Ada@example.test"}


async def test_i1_spellings_in_one_flow_are_one_recipient_with_one_confirmation() -> None:
    work = _work()
    await _save(work, _flow([PUNY.replace("lead", "Lead"), NFC, NFD]))
    (mail,) = _mails(work, CONFIRMATION)
    assert mail.rcpt_to == "Lead@xn--bcher-kva.de"  # local part as written
    assert list(work.tables.people) == [(ACCT, KEY)]


async def test_i1_a_confirmed_recipient_is_not_asked_again_under_another_spelling() -> None:
    work = _work()
    await _save(work, _flow([NFC]))
    await _click(work, NFD, on_confirm)
    await _save(work, _flow([PUNY], version=2, id="other"))
    assert len(_mails(work, CONFIRMATION)) == 1
    await _dispatch(work, _request([PUNY.upper()]))
    (alert,) = _mails(work, ALERT)
    assert alert.rcpt_to == "LEAD@xn--bcher-kva.de" and alert.message["To"] == alert.rcpt_to


async def test_i1_unsubscribed_under_one_spelling_is_not_mailed_under_another() -> None:
    work = _work()
    await _save(work, _flow([NFC]))
    await _click(work, NFC, on_confirm)
    await _dispatch(work, _request([NFD]))  # queued while confirmed
    await _click(work, PUNY, on_unsubscribe)
    admitted = await handlers.admit(work, _queued(work))
    assert admitted == set()  # refused at send time, whatever spelling the mail has
    await _dispatch(work, _request([f" {PUNY} "]))
    assert [m.status for m in _mails(work, ALERT)] == ["cancelled"]


async def test_x2_dedupe_keys_of_colliding_parts_differ() -> None:
    work = _work()
    await _save(work, _flow(["a@acme.test", "b@acme.test"]))
    await _click_all(work, "a@acme.test", "b@acme.test")
    one, two = _request(["a@acme.test"]), _request(["b@acme.test"])
    one = one.model_copy(update={"alert_id": "x:b@acme.test"})
    two = two.model_copy(update={"alert_id": "x"})
    # "alert:" + "x:b@acme.test" + ":a@acme.test" vs "alert:" + "x" + ":b@acme.test:..."
    await _dispatch(work, one, two)
    keys = [m.dedupe_key for m in _mails(work, ALERT)]
    assert len(keys) == len(set(keys)) == 2


def test_x2_privacy_inbox_ids_of_colliding_account_and_request_ids_differ() -> None:
    one, two = (
        PrivacyRequest.model_validate(
            {
                "request_id": r,
                "account_id": a,
                "profile_id": "p",
                "action": "erase",
                "requested_at": "2026-01-01T00:00:00Z",
            }
        )
        for a, r in (("a:b", "c"), ("a", "b:c"))
    )
    assert message_id(one) != message_id(two)


async def _click_all(work: MemoryAlertWork, *emails: str) -> None:
    for e in emails:
        current = (await work.recipients.find(ACCT, [e]))[e]
        await handlers.click(work, ACCT, e, current.generation, on_confirm)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(names=spellings(3))
@example(names=["a@bücher.de", unicodedata.normalize("NFD", "A@BÜCHER.DE"), "a@xn--bcher-kva.de"])
async def test_i1_an_opt_in_or_opt_out_under_one_spelling_holds_under_every_other(
    names: list[str],
) -> None:
    """Added under one spelling, confirmed through a second, re-listed under a third: one
    recipient, asked once, mailed; unsubscribed through the second: never mailed."""
    work = _work()
    await _save(work, _flow([names[0]]))
    key = recipient_key(names[0])
    generation = (await work.recipients.find(ACCT, [key]))[key].generation
    await handlers.click(work, ACCT, recipient_key(names[1]), generation, on_confirm)
    await _save(work, _flow([names[2]], version=2, id="other"))
    assert len(_mails(work, CONFIRMATION)) == 1
    await _dispatch(work, _request([names[2]]))
    assert len(_queued(work)) == 1
    await handlers.click(work, ACCT, recipient_key(names[1]), generation, on_unsubscribe)
    assert await handlers.admit(work, _queued(work)) == set()
    await _dispatch(work, _request([names[0]]))
    assert [m.status for m in _mails(work, ALERT)] == ["cancelled"]
