"""The consent use cases (`services/consent/handlers.py`) over in-memory ports: no
broker, no database. Each test names the SPEC rule it checks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import SecretStr

from services.consent import handlers
from services.consent.ports import Key
from shared.contracts import ConsentCommand, SmsInbound, SuppressionChanged, topics
from shared.privacy import hash_secret, subject_hashes
from shared.received import Received, Trace
from shared.settings import Settings
from tests.unit.consent.fakes import FakeOutbox, FakeWork, InMemoryConsentRepository

ACCOUNT = "acme"
SECRET = SecretStr("unit-test-hash-secret-of-at-least-32-bytes")
LINKS = SecretStr("unit-test-link-secret-of-at-least-32-bytes")
SINGLE = Settings(email_double_opt_in=False, privacy_hash_secret=SECRET, link_secret=LINKS)
DOUBLE = Settings(email_double_opt_in=True, privacy_hash_secret=SECRET, link_secret=LINKS)


def received(message: Any, topic: str = topics.CONSENT_COMMANDS) -> Received[Any]:
    record = ConsumerRecord(topic, 0, 7, 0, 0, b"k", message.to_bytes(), None, 1, 1, [])
    return Received(message, record, Trace(correlation_id=uuid.uuid4().hex))


def command(pid: str, action: str = "subscribe", **kw: Any) -> ConsentCommand:
    profile = {"id": pid, "email": kw.pop("email", f"{pid}@example.test")}
    if "phone" in kw:
        profile["phone_number"] = kw.pop("phone")
    return ConsentCommand.model_validate(
        {
            "command_id": kw.pop("command_id", uuid.uuid4().hex),
            "account_id": ACCOUNT,
            "profile": profile,
            "action": action,
            "channel": kw.pop("channel", "email"),
            "consented_at": kw.pop("consented_at", datetime.now(UTC) - timedelta(seconds=1)),
            **kw,
        }
    )


async def run(repo, outbox, *cmds: ConsentCommand, settings: Settings = SINGLE) -> None:
    await handlers.on_commands([received(c) for c in cmds], FakeWork(repo, outbox, settings))


def status(repo: InMemoryConsentRepository, pid: str, slot: str = "email") -> str:
    return repo.rows[Key(ACCOUNT, pid)].state.status(slot)


async def test_c1_c9_subscribe_stores_state_history_and_publishes_the_full_state() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    await run(repo, outbox, command("p1"))
    assert status(repo, "p1") == "subscribed"
    assert [h.entry.action for h in repo.history] == ["subscribe"]
    (change,) = outbox.on(topics.CONSENT_CHANGES)
    assert change.profile_id == "p1" and change.channel == "email"
    assert change.state.email.status == "subscribed"
    assert repo.rows[Key(ACCOUNT, "p1")].email == "p1@example.test"


async def test_x2_the_same_command_twice_changes_nothing_more() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    cmd = command("p1")
    await run(repo, outbox, cmd)
    await run(repo, outbox, cmd)
    assert len(outbox.on(topics.CONSENT_CHANGES)) == 1


async def test_c8_double_opt_in_keeps_the_subscribe_pending_and_queues_one_mail() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    cmd = command("p1", method="form")
    await run(repo, outbox, cmd, settings=DOUBLE)
    assert status(repo, "p1") != "subscribed"
    (confirmation,) = repo.confirmations.values()
    assert confirmation.email == "p1@example.test" and confirmation.confirmed_at is None
    (mail,) = repo.mails.values()
    assert mail.kind == "consent-confirmation" and mail.rcpt_to == "p1@example.test"
    await run(repo, outbox, cmd, settings=DOUBLE)  # redelivered: no second mail
    assert len(repo.mails) == 1


async def test_c8_the_account_setting_overrides_the_service_default() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    await repo.save_account_settings(ACCOUNT, {"email_double_opt_in": False})
    await run(repo, outbox, command("p1", method="form"), settings=DOUBLE)
    assert status(repo, "p1") == "subscribed"
    assert repo.mails == {}


async def test_c11_a_rejected_command_is_dead_lettered_with_its_reason() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    await run(repo, outbox, command("p1", action="resubscribe"))
    (letter,) = outbox.on(topics.dlq(topics.CONSENT_COMMANDS))
    assert "C11" in letter.error
    assert outbox.on(topics.CONSENT_CHANGES) == []
    assert [h.entry.result for h in repo.history] == ["rejected"]


async def test_c11_an_operator_resubscribe_without_evidence_is_refused_and_kept() -> None:
    repo = InMemoryConsentRepository()
    cmd = command("p1", action="resubscribe")
    state = (await repo.lock_states([Key(ACCOUNT, "p1")]))[Key(ACCOUNT, "p1")].state
    work = FakeWork(repo, FakeOutbox(), SINGLE)
    reason = await handlers.refuse_operator_act(work, cmd, state)
    assert reason is not None and "C11" in reason
    assert [h.entry.result for h in repo.history] == ["rejected"]
    with_evidence = command("p1", action="resubscribe", evidence="signed form #42")
    assert await handlers.refuse_operator_act(work, with_evidence, state) is None


async def test_c13_stop_unsubscribes_every_profile_on_the_number_and_replies() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    phone = "+4915112345678"
    for pid in ("p1", "p2"):
        await run(repo, outbox, command(pid, channel="sms", phone=phone, evidence="keyword"))
    assert status(repo, "p1", "sms_marketing") == "subscribed"
    stop = SmsInbound(
        message_id="m1",
        account_id=ACCOUNT,
        phone_number=phone,
        body="STOP",
        received_at=datetime.now(UTC),
    )
    await handlers.on_sms_inbound(
        [received(stop, topics.SMS_INBOUND)], FakeWork(repo, outbox, SINGLE)
    )
    assert status(repo, "p1", "sms_marketing") == "unsubscribed"
    assert status(repo, "p2", "sms_marketing") == "unsubscribed"
    (reply,) = outbox.on(topics.SMS_OUTBOUND)
    assert reply.in_reply_to == "m1" and reply.phone_number == phone


async def test_x4_consent_changes_of_a_keyword_carry_the_sms_trace() -> None:
    """An SMS is keyed by phone number, the consent changes it causes by profile: each
    change still carries the correlation id of the SMS that caused it, also when a batch
    holds several SMS with ids of their own."""
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    phones = {"p1": "+4915112345678", "p2": "+4915112345679"}
    for pid, phone in phones.items():
        await run(repo, outbox, command(pid, channel="sms", phone=phone, evidence="keyword"))
    outbox.headers.clear()
    batch = []
    for n, phone in enumerate(phones.values()):
        sms = SmsInbound(
            message_id=f"m{n}",
            account_id=ACCOUNT,
            phone_number=phone,
            body="STOP",
            received_at=datetime.now(UTC),
        )
        batch.append(Received(sms, None, Trace(correlation_id=f"sms-{n}")))  # type: ignore[arg-type]
    await handlers.on_sms_inbound(batch, FakeWork(repo, outbox, SINGLE))
    carried = {
        key: headers["correlation_id"]
        for topic, key, headers in outbox.headers
        if topic == topics.CONSENT_CHANGES
    }
    assert carried == {"p1": "sms-0", "p2": "sms-1"}


async def test_s3_a_spam_complaint_unsubscribes_email_and_keeps_the_read_model() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    await run(repo, outbox, command("p1"))
    at = datetime.now(UTC)
    change = SuppressionChanged(
        type="suppressed",
        change_id="c1",
        account_id=ACCOUNT,
        profile_id="p1",
        profile={"id": "p1", "email": "p1@example.test"},
        reason="spam_complaint",
        suppressions=[{"channel": "email", "reason": "spam_complaint", "list_id": None}],
        occurred_at=at,
    )
    items = [received(change, topics.SUPPRESSION_CHANGES)]
    await handlers.on_suppression_changes(items, FakeWork(repo, outbox, SINGLE))
    assert status(repo, "p1") == "unsubscribed"
    assert (await repo.suppressions([Key(ACCOUNT, "p1")]))[Key(ACCOUNT, "p1")][0]["reason"] == (
        "spam_complaint"
    )


async def test_p2_a_subscribe_for_an_erased_address_is_held_until_it_has_evidence() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    secret = hash_secret(SINGLE)
    repo.erased |= {(ACCOUNT, h) for h in subject_hashes(secret, "p1@example.test", None)}
    await run(repo, outbox, command("p1"))
    assert status(repo, "p1") == "never_subscribed"
    assert [h.entry.result for h in repo.history] == ["held_erased"]
    assert outbox.on(topics.CONSENT_CHANGES) == []
    await run(repo, outbox, command("p1", evidence="new signed form"))
    assert status(repo, "p1") == "subscribed"
    assert repo.erased == set()


async def test_c12_an_expired_confirmation_is_renewed_once_per_day() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    await run(repo, outbox, command("p1"), settings=DOUBLE)
    (old,) = repo.confirmations
    now = datetime.now(UTC) + timedelta(days=30)
    work = FakeWork(repo, FakeOutbox(), DOUBLE)
    assert await handlers.renew_confirmation(work, old, now)
    assert await handlers.renew_confirmation(work, old, now)
    assert len(repo.confirmations) == 2 and len(repo.mails) == 2
    assert not await handlers.renew_confirmation(work, "unknown", now)


async def test_w3_an_opt_out_is_confirmed_by_mail_only_when_the_account_asks() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    await run(repo, outbox, command("p1"))
    work = FakeWork(repo, FakeOutbox(), SINGLE)
    await handlers.queue_opt_out_confirmation(work, ACCOUNT, "p1", "link:1")
    assert repo.mails == {}
    await repo.save_page_settings(ACCOUNT, {"optout_confirmation_email": True})
    await handlers.queue_opt_out_confirmation(work, ACCOUNT, "p1", "link:1")
    (mail,) = repo.mails.values()
    assert mail.kind == "consent-optout" and mail.rcpt_to == "p1@example.test"
