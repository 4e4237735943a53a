"""The dispatcher's use cases (handlers.py, delivery.py) over the in-memory store: the
A-rules of SPEC.md as a sequence of calls, no broker and no database."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from services.alert_dispatcher import delivery, handlers
from services.alert_dispatcher.adapters.memory import MemoryAlertStore
from services.alert_dispatcher.delivery import ALERT, CONFIRMATION
from services.alert_dispatcher.domain.outcomes import ALL_REFUSED, NO_CONFIRMED
from services.alert_dispatcher.domain.recipients import Recipient, on_confirm, on_unsubscribe
from shared.contracts import AlertContent, AlertRequested, FlowDefinition, Profile
from shared.contracts.flows import FlowDeleted
from shared.db.mail_queue import QueuedMail
from shared.received import Received, Trace
from shared.settings import Settings

SETTINGS = Settings(
    link_secret="unit-test-secret-0123456789abcdef",
    privacy_hash_secret="unit-test-hash-secret-0123456789abcdef",
    public_base_url="https://links.acme.test",
    message_id_domain="mail.acme.test",
    alert_send_limit_per_hour=2,
    alert_send_window_s=3600,
)
ACCT = "acme"


def _received(message: Any) -> Received[Any]:
    return Received(message, object(), Trace(correlation_id="c-1"))  # type: ignore[arg-type]


def _flow(recipients: list[str], version: int = 1, **step: Any) -> FlowDefinition:
    return FlowDefinition.model_validate(
        {
            "account_id": ACCT,
            "flow_id": "nps",
            "version": version,
            "name": "NPS",
            "trigger": {"type": "metric", "metric": "Left NPS Score"},
            "steps": [
                {
                    "id": "alert",
                    "type": "internal_alert",
                    "mode": "live",
                    "recipients": recipients,
                    "from_email": "alerts@acme.test",
                    "subject": "Detractor",
                    "body": "{{ person.first_name }} scored {{ event.score }}",
                    "next": None,
                    **step,
                }
            ],
        }
    )


def _request(recipients: list[str], **content: Any) -> AlertRequested:
    return AlertRequested(
        alert_id=f"al-{uuid.uuid4().hex[:8]}",
        account_id=ACCT,
        flow_id="nps",
        flow_version=1,
        step_id="alert",
        profile_id="p-1",
        profile=Profile(id="p-1", email="ada@example.test", first_name="Ada"),
        event={"score": 3},
        action=AlertContent(
            recipients=recipients,
            from_email="alerts@acme.test",
            subject=content.pop("subject", "Detractor"),
            body=content.pop("body", "{{ person.first_name }}"),
        ),
    )


async def _save(store: MemoryAlertStore, *flows: Any) -> None:
    await handlers.save_definitions(store, [_received(f) for f in flows], SETTINGS)


async def _dispatch(store: MemoryAlertStore, *requests: AlertRequested) -> None:
    await handlers.dispatch(store, [_received(r) for r in requests], SETTINGS)


def _queued(store: MemoryAlertStore, kind: str = ALERT, **answer: Any) -> list[QueuedMail]:
    """The store's pending mails of `kind` as the mail worker claims (or finishes) them."""
    return [
        QueuedMail(m.id, m.dedupe_key, m.kind, m.account_id, m.rcpt_to, 0, **answer)
        for m in store.mails.values()
        if m.kind == kind and m.status == "pending"
    ]


def _outcomes(store: MemoryAlertStore) -> list[Any]:
    return [message for _, _, message in store.outbox]


async def _confirmed(store: MemoryAlertStore, *emails: str) -> None:
    for email in emails:
        await store.save_recipient(ACCT, Recipient(email, "confirmed", 1))


# --- A1, A3: flows saved -----------------------------------------------------------------


async def test_a3_new_recipients_get_one_confirmation_each() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["Lead@Acme.test", "boss@acme.test", "lead@acme.test"]))
    mails = [m for m in store.mails.values() if m.kind == CONFIRMATION]
    # One per recipient, mailed at the first spelling the flow wrote (local part kept).
    assert sorted(m.rcpt_to for m in mails) == ["Lead@acme.test", "boss@acme.test"]
    assert all(m.mail_from == "alerts@acme.test" for m in mails)
    people = await store.recipients(ACCT, ["boss@acme.test", "lead@acme.test"])
    assert {r.status for r in people.values()} == {"unconfirmed"}


async def test_a3_a_confirmed_recipient_added_elsewhere_is_not_asked_again() -> None:
    store = MemoryAlertStore()
    await _confirmed(store, "lead@acme.test")
    await _save(store, _flow(["lead@acme.test"]))
    assert store.mails == {}


async def test_a3_a_removed_and_re_added_recipient_is_asked_with_a_new_generation() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"]))
    await handlers.click(store, ACCT, "lead@acme.test", 1, on_unsubscribe)
    await _save(store, _flow(["boss@acme.test"], version=2), _flow(["lead@acme.test"], version=3))
    lead = (await store.recipients(ACCT, ["lead@acme.test"]))["lead@acme.test"]
    assert (lead.status, lead.generation) == ("unconfirmed", 2)
    asked = [m.rcpt_to for m in store.mails.values() if m.kind == CONFIRMATION]
    assert asked.count("lead@acme.test") == 2


async def test_a1_a_version_with_six_recipients_is_rejected_and_dead_lettered() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow([f"r{i}@acme.test" for i in range(6)]))
    assert list(store.rejections) == [(ACCT, "nps", 1)]
    assert "invalid flow" in store.dead_letters[0][2]
    assert store.mails == {} and store.versions == {}


async def test_f1_an_older_version_changes_nothing() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"], version=2), _flow(["boss@acme.test"], version=1))
    assert await store.flow_actions(ACCT, "nps") == {"alert": {"lead@acme.test"}}


async def test_a3_a_deleted_flow_has_no_alert_actions() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"]), FlowDeleted(account_id=ACCT, flow_id="nps"))
    assert await store.flow_actions(ACCT, "nps") == {}


# --- A4: links ---------------------------------------------------------------------------


async def test_a4_confirm_is_idempotent_and_an_old_link_cannot_undo_unsubscribe() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"]))
    first = await handlers.click(store, ACCT, "lead@acme.test", 1, on_confirm)
    again = await handlers.click(store, ACCT, "lead@acme.test", 1, on_confirm)
    assert (first.outcome, again.outcome) == ("changed", "unchanged")
    await handlers.click(store, ACCT, "lead@acme.test", 1, on_unsubscribe)
    late = await handlers.click(store, ACCT, "lead@acme.test", 1, on_confirm)
    assert late.outcome == "expired"
    assert (await store.recipients(ACCT, ["lead@acme.test"]))["lead@acme.test"].status == (
        "disabled"
    )


async def test_c12_renewal_sends_one_new_mail_from_the_last_sender_only_if_unconfirmed() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"], from_email="team@acme.test"))
    now = store.clock + timedelta(days=20)
    assert await handlers.renew_confirmation(store, SETTINGS, ACCT, "lead@acme.test", now)
    assert await handlers.renew_confirmation(store, SETTINGS, ACCT, "lead@acme.test", now)
    mails = [m for m in store.mails.values() if m.kind == CONFIRMATION]
    assert len(mails) == 2 and {m.mail_from for m in mails} == {"team@acme.test"}
    await handlers.click(store, ACCT, "lead@acme.test", 1, on_confirm)
    assert not await handlers.renew_confirmation(store, SETTINGS, ACCT, "lead@acme.test", now)


async def test_a4_resend_queues_a_new_mail_only_for_an_unconfirmed_recipient() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"]))
    done = await handlers.resend_confirmation(store, SETTINGS, ACCT, "lead@acme.test", "n1")
    assert done.mail_id is not None and store.mails[done.mail_id].mail_from == "alerts@acme.test"
    await handlers.click(store, ACCT, "lead@acme.test", 1, on_confirm)
    refused = await handlers.resend_confirmation(store, SETTINGS, ACCT, "lead@acme.test", "n2")
    assert refused.mail_id is None and refused.recipient is not None
    unknown = await handlers.resend_confirmation(store, SETTINGS, ACCT, "who@acme.test", "n3")
    assert unknown.recipient is None


# --- A5, A7: alert requests --------------------------------------------------------------


async def test_a5_no_confirmed_recipient_is_skipped_with_the_reason_and_no_mail() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"]))
    req = _request(["lead@acme.test"])
    await _dispatch(store, req)
    (outcome,) = _outcomes(store)
    assert (outcome.type, outcome.reason, outcome.alert_id) == (
        "skipped",
        NO_CONFIRMED,
        req.alert_id,
    )
    assert store.alerts[req.alert_id].status == "skipped"
    assert store.deliveries[req.alert_id, "lead@acme.test"].error == "recipient unconfirmed"
    assert _queued(store) == []


async def test_a5_each_confirmed_recipient_gets_one_mail_and_the_others_are_skipped() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test", "boss@acme.test", "new@acme.test"]))
    await _confirmed(store, "lead@acme.test", "boss@acme.test")
    req = _request(["lead@acme.test", "boss@acme.test", "new@acme.test"])
    await _dispatch(store, req, req)
    assert sorted(m.rcpt_to for m in _queued(store)) == ["boss@acme.test", "lead@acme.test"]
    assert store.deliveries[req.alert_id, "new@acme.test"].status == "skipped"
    assert _outcomes(store) == []


async def test_a5_a_recipient_removed_from_the_action_since_is_not_mailed() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test", "boss@acme.test"]))
    await _confirmed(store, "lead@acme.test", "boss@acme.test")
    await _save(store, _flow(["lead@acme.test"], version=2))
    req = _request(["lead@acme.test", "boss@acme.test"])
    await _dispatch(store, req)
    assert [m.rcpt_to for m in _queued(store)] == ["lead@acme.test"]
    assert store.deliveries[req.alert_id, "boss@acme.test"].error == handlers.REMOVED


async def test_a7_a_template_over_its_budget_fails_its_own_alert_only() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"]))
    await _confirmed(store, "lead@acme.test")
    bomb = _request(["lead@acme.test"], body="{{ 'x' * event.e }}")
    bomb = bomb.model_copy(update={"event": {"e": 10_000_000}})
    fine = _request(["lead@acme.test"])
    await _dispatch(store, bomb, fine)
    (outcome,) = _outcomes(store)
    assert outcome.alert_id == bomb.alert_id and outcome.type == "failed"
    assert outcome.reason.startswith("Failed: the alert could not be built")
    assert [m.dedupe_key for m in _queued(store)] == [f"alert:{fine.alert_id}:lead@acme.test"]


# --- A5, A6, A8, A9: sending and outcomes (delivery.py) ----------------------------------


async def _one_alert_queued(store: MemoryAlertStore, *emails: str) -> AlertRequested:
    await _save(store, _flow(list(emails)))
    await _confirmed(store, *emails)
    req = _request(list(emails))
    await _dispatch(store, req)
    return req


async def test_a6_the_outcome_is_published_once_when_the_last_mail_is_done() -> None:
    store = MemoryAlertStore()
    req = await _one_alert_queued(store, "lead@acme.test", "boss@acme.test")
    first, second = _queued(store, status="sent")
    await delivery.on_final(store, [first])
    assert _outcomes(store) == []
    await delivery.on_final(store, [second])
    await delivery.on_final(store, [second])
    (outcome,) = _outcomes(store)
    assert (outcome.type, outcome.recipients) == ("sent", ["boss@acme.test", "lead@acme.test"])
    assert store.alerts[req.alert_id].status == "sent"


async def test_a9_a_permanent_refusal_is_kept_per_recipient() -> None:
    store = MemoryAlertStore()
    req = await _one_alert_queued(store, "lead@acme.test", "boss@acme.test")
    failed, sent = _queued(store)
    await delivery.on_final(
        store,
        [replace(failed, status="failed", error="550 no such user"), replace(sent, status="sent")],
    )
    (outcome,) = _outcomes(store)
    assert outcome.type == "sent" and outcome.failed_recipients == [failed.rcpt_to]
    assert store.deliveries[req.alert_id, failed.rcpt_to].error == "550 no such user"


async def test_a9_every_recipient_refused_fails_the_alert() -> None:
    store = MemoryAlertStore()
    await _one_alert_queued(store, "lead@acme.test")
    await delivery.on_final(store, _queued(store, status="failed", error="550"))
    (outcome,) = _outcomes(store)
    assert (outcome.type, outcome.reason) == ("failed", ALL_REFUSED)


async def test_a5_a_recipient_who_unsubscribed_before_sending_is_not_mailed() -> None:
    store = MemoryAlertStore()
    req = await _one_alert_queued(store, "lead@acme.test")
    claimed = _queued(store)
    await handlers.click(store, ACCT, "lead@acme.test", 1, on_unsubscribe)
    assert await delivery.admit(store, claimed, SETTINGS) == set()
    assert store.mails[claimed[0].id].status == "cancelled"
    (outcome,) = _outcomes(store)
    assert (outcome.type, outcome.reason) == ("skipped", NO_CONFIRMED)
    assert store.deliveries[req.alert_id, "lead@acme.test"].error == (
        "recipient disabled at send time"
    )


async def test_a8_mails_over_the_limit_wait_for_the_next_window_and_none_is_dropped() -> None:
    store = MemoryAlertStore()
    await _one_alert_queued(store, "a@acme.test", "b@acme.test", "c@acme.test")
    claimed = _queued(store)
    admitted = await delivery.admit(store, claimed, SETTINGS)
    assert admitted == {claimed[0].id, claimed[1].id}  # SETTINGS: 2 an hour
    held = store.mails[claimed[2].id]
    assert held.status == "pending" and held.next_attempt_at is not None
    assert held.next_attempt_at > store.clock
    store.clock = held.next_attempt_at
    assert await delivery.admit(store, [claimed[2]], SETTINGS) == {claimed[2].id}


async def test_a8_a_retry_was_counted_already_and_confirmations_count_too() -> None:
    store = MemoryAlertStore()
    await store.set_send_limit(ACCT, 1)
    await _save(store, _flow(["a@acme.test", "b@acme.test"]))
    confirmations = _queued(store, CONFIRMATION)
    retry = replace(confirmations[0], attempts=1)
    admitted = await delivery.admit(store, [retry, confirmations[1]], SETTINGS)
    assert admitted == {retry.id, confirmations[1].id}
    third = await handlers.resend_confirmation(store, SETTINGS, ACCT, "a@acme.test", "n")
    extra = [m for m in _queued(store, CONFIRMATION) if m.id == third.mail_id]
    assert await delivery.admit(store, extra, SETTINGS) == set()


# --- X4: an outcome carries the trace of its request ---------------------------------------


def _outcome_headers(store: MemoryAlertStore) -> dict[str, Any]:
    return dict(store.outbox_headers)


async def test_x4_an_outcome_recorded_after_sending_carries_its_requests_trace() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"]))
    await _confirmed(store, "lead@acme.test")
    first, second = _request(["lead@acme.test"]), _request(["lead@acme.test"])
    traced = Trace("c-first", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    await handlers.dispatch(
        store,
        [Received(first, object(), traced), Received(second, object(), Trace("c-second"))],  # type: ignore[arg-type]
        SETTINGS,
    )
    await delivery.on_final(store, _queued(store, status="sent"))
    assert _outcome_headers(store) == {
        first.alert_id: traced.headers(),
        second.alert_id: {"correlation_id": "c-second"},
    }


async def test_x4_an_outcome_recorded_at_once_carries_its_own_requests_trace() -> None:
    store = MemoryAlertStore()
    await _save(store, _flow(["lead@acme.test"]))
    reqs = [_request(["lead@acme.test"]), _request(["lead@acme.test"])]
    await handlers.dispatch(
        store,
        [Received(r, object(), Trace(f"c-{n}")) for n, r in enumerate(reqs)],  # type: ignore[arg-type]
        SETTINGS,
    )
    assert _outcome_headers(store) == {
        reqs[0].alert_id: {"correlation_id": "c-0"},
        reqs[1].alert_id: {"correlation_id": "c-1"},
    }
