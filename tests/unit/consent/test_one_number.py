"""C6, X2, C13: an SMS opt-out belongs to the phone number, for every profile that
carries it now or later; two profiles on one number each get their own changes. The
consent use cases over in-memory ports (the same scenarios run against the real
services in tests/component/consent/test_one_person_services.py)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts import SmsInbound, topics
from tests.unit.consent.fakes import FakeOutbox, FakeWork, InMemoryConsentRepository
from tests.unit.consent.test_handlers import ACCOUNT, SINGLE, command, received, run, status

NUMBER = "+15555550123"
NOW = datetime.now(UTC)


def sms_in(body: str, at: datetime, number: str = NUMBER) -> SmsInbound:
    return SmsInbound(
        message_id=uuid.uuid4().hex,
        account_id=ACCOUNT,
        phone_number=number,
        body=body,
        received_at=at,
    )


async def text(repo, outbox, *messages: SmsInbound) -> None:
    from services.consent import handlers

    await handlers.on_sms_inbound(
        [received(m, topics.SMS_INBOUND) for m in messages], FakeWork(repo, outbox, SINGLE)
    )


def sms_subscribe(pid: str, at: datetime, number: str = NUMBER, **kw):
    return command(pid, channel="sms", phone=number, consented_at=at, method="form", **kw)


async def two_on_one_number() -> tuple[InMemoryConsentRepository, FakeOutbox]:
    """Profiles p1 and p2 both subscribed to SMS on NUMBER two hours ago."""
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    early = NOW - timedelta(hours=2)
    await run(repo, outbox, sms_subscribe("p1", early), sms_subscribe("p2", early))
    return repo, outbox


async def test_c6_x2_two_profiles_on_one_number_each_get_their_own_opt_out() -> None:
    """Today both "Unsubscribed from SMS" events carried one change_id, so the executor
    dropped the second as a duplicate and that profile stayed reachable."""
    repo, outbox = await two_on_one_number()
    await text(repo, outbox, sms_in("STOP", NOW - timedelta(minutes=1)))
    changes = [c for c in outbox.on(topics.CONSENT_CHANGES) if c.type == "Unsubscribed from SMS"]
    assert sorted(c.profile_id for c in changes) == ["p1", "p2"]
    assert len({c.change_id for c in changes}) == 2
    assert status(repo, "p1", "sms_marketing") == status(repo, "p2", "sms_marketing")
    assert status(repo, "p1", "sms_marketing") == "unsubscribed"


async def test_c6_an_sms_unsubscribe_of_one_profile_holds_for_every_profile_on_the_number() -> None:
    repo, outbox = await two_on_one_number()
    unsub = command("p1", "unsubscribe", channel="sms", phone="+1 555 555 0123", method="api")
    await run(repo, outbox, unsub)
    assert status(repo, "p2", "sms_marketing") == "unsubscribed"
    # ... and for a profile that brings the number later: its form subscribe without
    # evidence is rejected (C11: no state change, so the number stays withdrawn for it).
    await run(repo, outbox, sms_subscribe("p3", datetime.now(UTC)))
    assert status(repo, "p3", "sms_marketing") != "subscribed"
    rejected = outbox.on(topics.dlq(topics.CONSENT_COMMANDS))
    assert rejected and "C11" in rejected[-1].error


@pytest.mark.parametrize("order", list(itertools.permutations(["stop", "import"])))
async def test_c6_x3_a_stop_before_any_profile_holds_for_the_profile_that_brings_the_number(
    order,
) -> None:
    """A STOP from a number no profile has yet, and an older SMS subscribe imported for a
    profile with that number: `unsubscribed` in either arrival order (today the import
    arriving second ended `subscribed`)."""
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    stop = sms_in("Stop.", NOW - timedelta(hours=1))
    imported = command(
        "p9", channel="sms", phone="+1 (555) 555-0123", method="import",
        consented_at=NOW - timedelta(days=30), historical_import=True,
    )  # fmt: skip
    for step in order:
        if step == "stop":
            await text(repo, outbox, stop)
        else:
            await run(repo, outbox, imported)
    assert status(repo, "p9", "sms_marketing") == "unsubscribed"
    assert status(repo, "p9", "sms_transactional") == "unsubscribed"


async def test_c6_c11_evidence_lifts_the_number_opt_out_for_that_profile_only() -> None:
    """A subscribe of one profile never subscribes another (I1)."""
    repo, outbox = await two_on_one_number()
    await text(repo, outbox, sms_in("stop all", NOW - timedelta(hours=1)))
    back = sms_subscribe("p1", NOW - timedelta(minutes=5), evidence="signed paper form #7")
    await run(repo, outbox, back)
    assert status(repo, "p1", "sms_marketing") == "subscribed"
    assert status(repo, "p2", "sms_marketing") == "unsubscribed"


async def test_c6_c13_start_from_the_number_lifts_its_opt_out_for_every_profile() -> None:
    repo, outbox = await two_on_one_number()
    await text(repo, outbox, sms_in("STOP", NOW - timedelta(hours=1)))
    await text(repo, outbox, sms_in("START", NOW - timedelta(minutes=30)))
    assert status(repo, "p1", "sms_marketing") == "subscribed"
    assert status(repo, "p2", "sms_marketing") == "subscribed"
    replies = [r.body for r in outbox.on(topics.SMS_OUTBOUND)]
    assert "unsubscribed" in replies[0] and "subscribed to messages again" in replies[1]


async def test_i1_an_email_opt_out_holds_for_every_profile_carrying_the_address() -> None:
    """I1: profiles that carry one address in any spelling are one person for an
    opt-out, now or later; a subscribe of one never subscribes another."""
    import unicodedata

    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    early = NOW - timedelta(hours=2)
    spellings = (
        "José.Ng@Bücher.example",
        unicodedata.normalize("NFD", " JOSÉ.NG@BÜCHER.EXAMPLE "),
        "josé.ng@xn--bcher-kva.example",
    )
    await run(
        repo,
        outbox,
        command("p1", email=spellings[0], consented_at=early),
        command("p2", email=spellings[1], consented_at=early),
    )
    assert status(repo, "p2") == "subscribed"
    await run(repo, outbox, command("p1", "unsubscribe", email=spellings[0]))
    assert status(repo, "p1") == status(repo, "p2") == "unsubscribed"
    # A new profile with the punycode spelling: its form subscribe asks the person
    # (C11: a confirmation mail) instead of subscribing.
    await run(repo, outbox, command("p3", email=spellings[2], consented_at=datetime.now(UTC)))
    assert status(repo, "p3") == "unsubscribed"
    assert repo.mails  # the confirmation mail, the person's own way back in
    back = command("p1", "resubscribe", email=spellings[0], evidence="signed form 9",
                   consented_at=datetime.now(UTC))  # fmt: skip
    await run(repo, outbox, back)
    assert status(repo, "p1") == "subscribed"
    assert status(repo, "p2") == status(repo, "p3") == "unsubscribed"
    ids = [c.change_id for c in outbox.on(topics.CONSENT_CHANGES)]
    assert len(ids) == len(set(ids))


async def test_p2_c11_i1_an_erase_holds_every_spelling_and_invisible_evidence_lifts_nothing() -> (
    None
):
    """P2 by any spelling (I1) and for the erased profile id itself; evidence made only
    of zero-width or format characters is no evidence (C11), so it does not lift it."""
    import unicodedata

    from shared.privacy import hash_secret, profile_hash, subject_hashes

    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    secret = hash_secret(SINGLE)
    repo.erased |= {(ACCOUNT, h) for h in subject_hashes(secret, "José@Bücher.example", None)}
    repo.erased.add((ACCOUNT, profile_hash(secret, "gone")))
    spellings = [unicodedata.normalize("NFD", "JOSÉ@bücher.example"), "josé@xn--bcher-kva.example"]
    for n, spelling in enumerate(spellings):
        await run(repo, outbox, command(f"n{n}", email=spelling, evidence="\u200b\u2060"))
    await run(repo, outbox, command("gone", email="new.address@example.org"))
    assert [h.entry.result for h in repo.history] == ["held_erased"] * 3
    assert all(status(repo, p) == "never_subscribed" for p in ("n0", "n1", "gone"))
    assert not outbox.on(topics.CONSENT_CHANGES)
    assert len(repo.erased) == 2  # nothing lifted


async def test_c6_f7_a_number_act_folded_into_a_new_profile_publishes_its_number() -> None:
    """Regression (people through the services): a START kept for a number, folded into
    a profile that brings the number later, published its change with the profile's
    attributes still empty, so the executor saw no phone number and held SMS back."""
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    await text(repo, outbox, sms_in("START", NOW - timedelta(hours=1)))
    await run(repo, outbox, command("p7", channel="push", phone=NUMBER, method="api"))
    changes = [c for c in outbox.on(topics.CONSENT_CHANGES) if c.profile_id == "p7"]
    assert [c.type for c in changes] == ["Subscribed to SMS Marketing", "Subscribed to Mobile Push"]
    assert all(c.profile.phone_number == NUMBER for c in changes)
