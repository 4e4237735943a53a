"""I1 and X2 in the suppression service's use cases, over the in-memory unit of work: a
suppression of an address holds for every profile the service knows that carries it,
in any spelling, and for profiles that carry it later; change ids cannot collide."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services.suppression import handlers
from services.suppression.entrypoints import kafka
from services.suppression.ports import Key
from shared.contracts import PrivacyRequest, SuppressionCommand, topics
from shared.privacy_requests import message_id
from tests.unit.suppression.fakes import FakeSuppressionWork
from tests.unit.suppression.spellings import PHONE_SPELLINGS, spellings
from tests.unit.suppression.test_handlers import T0, fresh, received

ACCOUNT = "acme"
NFC = "Lead@Bücher.de"
NFD = unicodedata.normalize("NFD", "LEAD@BÜCHER.DE")
PUNY = " lead@xn--bcher-kva.de "


def cmd(
    pid: str,
    action: str,
    reason: str,
    n: int = 0,
    email: str | None = None,
    phone: str | None = None,
    account: str = ACCOUNT,
    command_id: str | None = None,
    **kw: Any,
) -> SuppressionCommand:
    profile: dict[str, Any] = {"id": pid}
    if email is not None:
        profile["email"] = email
    if phone is not None:
        profile["phone_number"] = phone
    return SuppressionCommand.model_validate(
        {
            "command_id": command_id or uuid.uuid4().hex,
            "account_id": account,
            "profile": profile,
            "action": action,
            "reason": reason,
            "occurred_at": T0 + timedelta(minutes=n),
            **kw,
        }
    )


async def run(work: FakeSuppressionWork, *cmds: SuppressionCommand) -> None:
    await handlers.on_commands([received(c) for c in cmds], work)


def held(work: FakeSuppressionWork, pid: str, account: str = ACCOUNT) -> set[tuple]:
    state = work.profiles.states.get(Key(account, pid))
    return {(s.channel, s.reason, s.list_id) for s in state.suppressions} if state else set()


def changes_of(work: FakeSuppressionWork, pid: str) -> list[Any]:
    return [m for m in work.on(topics.SUPPRESSION_CHANGES) if m.profile_id == pid]


async def test_i1_a_suppression_reaches_every_known_profile_carrying_the_address() -> None:
    work = fresh()
    # Two profiles the service knows, each under its own spelling of one address.
    await run(work, cmd("p2", "suppress", "delivered", email=NFD))
    await run(work, cmd("p3", "suppress", "delivered", email="other@bücher.de"))
    await run(work, cmd("p1", "suppress", "hard_bounce", 1, email=NFC))
    assert held(work, "p1") == held(work, "p2") == {("email", "hard_bounce", None)}
    assert held(work, "p3") == set()  # another address
    (own,), (theirs,) = changes_of(work, "p1"), changes_of(work, "p2")
    assert theirs.type == "suppressed" and theirs.reason == "hard_bounce"
    assert theirs.suppressions == own.suppressions
    assert theirs.change_id != own.change_id
    assert theirs.profile.email == NFD  # each profile's own attributes
    assert [h.profile_id for h in work.history.rows] == ["p1", "p2"]


async def test_i1_a_profile_seen_later_with_a_suppressed_address_inherits_it() -> None:
    work = fresh()
    await run(
        work,
        cmd("p1", "suppress", "spam_complaint", email=NFC),
        cmd("p1", "suppress", "manual", 1, email=NFC, list_id="news"),
        cmd("p1", "suppress", "manual", 2, email=NFC, channel="sms"),  # no number: its own
    )
    await run(work, cmd("p9", "suppress", "delivered", 3, email=PUNY))
    assert held(work, "p9") == {("email", "spam_complaint", None), ("email", "manual", "news")}
    got = changes_of(work, "p9")
    assert [(c.type, c.reason, c.list_id) for c in got] == [
        ("suppressed", "spam_complaint", None),
        ("suppressed", "manual", "news"),
    ]
    # `since` and `reported_at` are those of the address's suppression, not of the later command
    assert got[0].reported_at == T0 and len({c.change_id for c in got}) == 2


async def test_i1_unsuppress_of_an_address_lifts_it_for_every_profile_carrying_it() -> None:
    work = fresh()
    await run(work, cmd("p2", "suppress", "delivered", email=PUNY))
    await run(work, cmd("p1", "suppress", "hard_bounce", 1, email=NFC))
    await run(work, cmd("p2", "unsuppress", "hard_bounce", 2, email=NFD))
    assert held(work, "p1") == held(work, "p2") == set()
    assert [c.type for c in changes_of(work, "p1")] == ["suppressed", "unsuppressed"]


async def test_i1_sms_suppressions_follow_the_number_in_any_format() -> None:
    work = fresh()
    await run(work, cmd("p2", "suppress", "delivered", phone="+1 (212) 555-0100"))
    await run(work, cmd("p1", "suppress", "manual", 1, phone="+12125550100", channel="sms"))
    assert held(work, "p2") == {("sms", "manual", None)}
    # An email suppression does not travel by the number.
    await run(work, cmd("p1", "suppress", "hard_bounce", 2, phone="+12125550100"))
    assert held(work, "p2") == {("sms", "manual", None)}


async def test_i1_soft_bounce_counts_stay_per_profile_the_suppression_they_reach_does_not() -> None:
    work = fresh()
    await run(work, cmd("p2", "suppress", "soft_bounce", email=NFD))
    await run(work, *(cmd("p1", "suppress", "soft_bounce", n, email=NFC) for n in range(3)))
    assert work.profiles.states[Key(ACCOUNT, "p2")].soft_bounces == 1
    assert held(work, "p2") == {("email", "soft_bounce", None)}


async def test_i1_a_consent_lift_of_one_profile_lifts_nothing_of_another() -> None:
    from tests.unit.suppression.test_handlers import ConsentChanged

    work = fresh()
    await run(work, cmd("p2", "suppress", "delivered", email=NFD))
    await run(work, cmd("p1", "suppress", "manual", 1, email=NFC))
    change = ConsentChanged.model_validate(
        {
            "type": "Subscribed to Email Marketing",
            "change_id": "c1",
            "account_id": ACCOUNT,
            "profile_id": "p1",
            "profile": {"id": "p1", "email": NFC},
            "channel": "email",
            "method": "form",
            "consented_at": T0 + timedelta(minutes=5),
            "occurred_at": T0 + timedelta(minutes=5),
            "state": {},
        }
    )
    await handlers.on_consent_changes([received(change, topics.CONSENT_CHANGES)], work)
    assert held(work, "p1") == set()
    assert held(work, "p2") == {("email", "manual", None)}  # a subscribe is the profile's own


async def test_x2_change_ids_of_colliding_account_and_command_ids_differ() -> None:
    work = fresh()
    await run(
        work,
        cmd("p", "suppress", "manual", account="a:b", command_id="c"),
        cmd("p", "suppress", "manual", account="a", command_id="b:c"),
    )
    ids = [m.change_id for m in work.on(topics.SUPPRESSION_CHANGES)]
    assert len(ids) == 2 and ids[0] != ids[1]


def test_x2_inbox_ids_of_colliding_account_and_request_ids_differ() -> None:
    one = cmd("p", "suppress", "manual", account="a:b", command_id="c")
    two = cmd("p", "suppress", "manual", account="a", command_id="b:c")
    assert kafka.command_message_id(one) != kafka.command_message_id(two)
    requests = [
        PrivacyRequest.model_validate(
            {
                "request_id": r,
                "account_id": a,
                "profile_id": "p",
                "action": "erase",
                "requested_at": T0,
            }
        )
        for a, r in (("a:b", "c"), ("a", "b:c"))
    ]
    assert message_id(requests[0]) != message_id(requests[1])


# --- every spelling (hypothesis) ---------------------------------------------------------


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=spellings(3),
    reason=st.sampled_from(["manual", "hard_bounce", "spam_complaint", "invalid_email"]),
    list_id=st.sampled_from([None, "news"]),
)
@example(names=["a@bücher.de", "A@BÜCHER.DE", "a@xn--bcher-kva.de"], reason="manual", list_id=None)
async def test_i1_a_suppression_under_one_spelling_holds_under_every_other(
    names: list[str], reason: str, list_id: str | None
) -> None:
    """Known before (p-known) or seen after (p-later), every profile that carries any
    spelling of the suppressed address holds the suppression; an unsuppress under a
    third spelling lifts it for all (spam complaints excepted, S5)."""
    work = fresh()
    await run(work, cmd("p-known", "suppress", "delivered", email=names[0]))
    await run(work, cmd("p-source", "suppress", reason, 1, email=names[1], list_id=list_id))
    await run(work, cmd("p-later", "suppress", "delivered", 2, email=names[2]))
    want = {("email", reason, list_id)}
    assert held(work, "p-known") == held(work, "p-source") == held(work, "p-later") == want
    if reason == "spam_complaint":
        return
    await run(work, cmd("p-later", "unsuppress", reason, 3, email=names[2], list_id=list_id))
    assert held(work, "p-known") == held(work, "p-source") == held(work, "p-later") == set()


@settings(max_examples=40)
@given(numbers=PHONE_SPELLINGS)
async def test_i1_an_sms_suppression_under_one_format_holds_under_every_other(
    numbers: list[str],
) -> None:
    work = fresh()
    await run(work, cmd("p1", "suppress", "manual", phone=numbers[0], channel="sms"))
    await run(work, cmd("p2", "suppress", "delivered", 1, phone=numbers[1]))
    assert held(work, "p2") == {("sms", "manual", None)}
