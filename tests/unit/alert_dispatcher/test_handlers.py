"""The dispatcher's use cases (handlers.py) over the in-memory work: the
A-rules of SPEC.md as a sequence of calls, no broker and no database."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from services.alert_dispatcher import handlers
from services.alert_dispatcher.adapters.memory import MemoryAlertWork, MemoryTables
from services.alert_dispatcher.bootstrap import bootstrap
from services.alert_dispatcher.domain.outcomes import ALL_REFUSED, NO_CONFIRMED
from services.alert_dispatcher.domain.recipients import Recipient, on_confirm, on_unsubscribe
from services.alert_dispatcher.handlers import ALERT, CONFIRMATION
from shared import privacy_requests
from shared.contracts import (
    AlertContent,
    AlertRequested,
    FlowDefinition,
    PrivacyRequest,
    Profile,
)
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


def _work() -> Any:
    """The dispatcher's work in memory, bound to SETTINGS as the service binds its own."""
    return bootstrap(SETTINGS, MemoryAlertWork)(MemoryTables())


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


async def _save(work: MemoryAlertWork, *flows: Any) -> None:
    await handlers.save_definitions([_received(f) for f in flows], work)


async def _dispatch(work: MemoryAlertWork, *requests: AlertRequested) -> None:
    await handlers.dispatch([_received(r) for r in requests], work)


def _queued(work: MemoryAlertWork, kind: str = ALERT, **answer: Any) -> list[QueuedMail]:
    """The work's pending mails of `kind` as the mail worker claims (or finishes) them."""
    return [
        QueuedMail(m.id, m.dedupe_key, m.kind, m.account_id, m.rcpt_to, 0, **answer)
        for m in work.tables.mails.values()
        if m.kind == kind and m.status == "pending"
    ]


def _outcomes(work: MemoryAlertWork) -> list[Any]:
    return [message for _, _, message, _ in work.tables.outbox]


async def _confirmed(work: MemoryAlertWork, *emails: str) -> None:
    for email in emails:
        await work.recipients.save(ACCT, Recipient(email, "confirmed", 1))


# --- A1, A3: flows saved -----------------------------------------------------------------


async def test_a3_new_recipients_get_one_confirmation_each() -> None:
    work = _work()
    await _save(work, _flow(["Lead@Acme.test", "boss@acme.test", "lead@acme.test"]))
    mails = [m for m in work.tables.mails.values() if m.kind == CONFIRMATION]
    # One per recipient, mailed at the first spelling the flow wrote (local part kept).
    assert sorted(m.rcpt_to for m in mails) == ["Lead@acme.test", "boss@acme.test"]
    assert all(m.mail_from == "alerts@acme.test" for m in mails)
    people = await work.recipients.find(ACCT, ["boss@acme.test", "lead@acme.test"])
    assert {r.status for r in people.values()} == {"unconfirmed"}


async def test_a3_a_confirmed_recipient_added_elsewhere_is_not_asked_again() -> None:
    work = _work()
    await _confirmed(work, "lead@acme.test")
    await _save(work, _flow(["lead@acme.test"]))
    assert work.tables.mails == {}


async def test_a3_a_removed_and_re_added_recipient_is_asked_with_a_new_generation() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"]))
    await handlers.click(work, ACCT, "lead@acme.test", 1, on_unsubscribe)
    await _save(work, _flow(["boss@acme.test"], version=2), _flow(["lead@acme.test"], version=3))
    lead = (await work.recipients.find(ACCT, ["lead@acme.test"]))["lead@acme.test"]
    assert (lead.status, lead.generation) == ("unconfirmed", 2)
    asked = [m.rcpt_to for m in work.tables.mails.values() if m.kind == CONFIRMATION]
    assert asked.count("lead@acme.test") == 2


async def test_a1_a_version_with_six_recipients_is_rejected_and_dead_lettered() -> None:
    work = _work()
    await _save(work, _flow([f"r{i}@acme.test" for i in range(6)]))
    assert list(work.tables.rejections) == [(ACCT, "nps", 1)]
    assert "invalid flow" in work.tables.dead_letters[0][2]
    assert work.tables.mails == {} and work.tables.versions == {}


async def test_f1_an_older_version_changes_nothing() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"], version=2), _flow(["boss@acme.test"], version=1))
    assert await work.flows.actions(ACCT, "nps") == {"alert": {"lead@acme.test"}}


async def test_a3_a_deleted_flow_has_no_alert_actions() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"]), FlowDeleted(account_id=ACCT, flow_id="nps"))
    assert await work.flows.actions(ACCT, "nps") == {}


# --- A4: links ---------------------------------------------------------------------------


async def test_a4_confirm_is_idempotent_and_an_old_link_cannot_undo_unsubscribe() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"]))
    first = await handlers.click(work, ACCT, "lead@acme.test", 1, on_confirm)
    again = await handlers.click(work, ACCT, "lead@acme.test", 1, on_confirm)
    assert (first.outcome, again.outcome) == ("changed", "unchanged")
    await handlers.click(work, ACCT, "lead@acme.test", 1, on_unsubscribe)
    late = await handlers.click(work, ACCT, "lead@acme.test", 1, on_confirm)
    assert late.outcome == "expired"
    assert (await work.recipients.find(ACCT, ["lead@acme.test"]))["lead@acme.test"].status == (
        "disabled"
    )


async def test_c12_renewal_sends_one_new_mail_from_the_last_sender_only_if_unconfirmed() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"], from_email="team@acme.test"))
    now = work.tables.clock + timedelta(days=20)
    assert await handlers.renew_confirmation(work, ACCT, "lead@acme.test", now)
    assert await handlers.renew_confirmation(work, ACCT, "lead@acme.test", now)
    mails = [m for m in work.tables.mails.values() if m.kind == CONFIRMATION]
    assert len(mails) == 2 and {m.mail_from for m in mails} == {"team@acme.test"}
    await handlers.click(work, ACCT, "lead@acme.test", 1, on_confirm)
    assert not await handlers.renew_confirmation(work, ACCT, "lead@acme.test", now)


async def test_a4_resend_queues_a_new_mail_only_for_an_unconfirmed_recipient() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"]))
    done = await handlers.resend_confirmation(work, ACCT, "lead@acme.test", "n1")
    assert (
        done.mail_id is not None and work.tables.mails[done.mail_id].mail_from == "alerts@acme.test"
    )
    await handlers.click(work, ACCT, "lead@acme.test", 1, on_confirm)
    refused = await handlers.resend_confirmation(work, ACCT, "lead@acme.test", "n2")
    assert refused.mail_id is None and refused.recipient is not None
    unknown = await handlers.resend_confirmation(work, ACCT, "who@acme.test", "n3")
    assert unknown.recipient is None


# --- A5, A7: alert requests --------------------------------------------------------------


async def test_a5_no_confirmed_recipient_is_skipped_with_the_reason_and_no_mail() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"]))
    req = _request(["lead@acme.test"])
    await _dispatch(work, req)
    (outcome,) = _outcomes(work)
    assert (outcome.type, outcome.reason, outcome.alert_id) == (
        "skipped",
        NO_CONFIRMED,
        req.alert_id,
    )
    assert work.tables.alerts[req.alert_id].status == "skipped"
    assert work.tables.deliveries[req.alert_id, "lead@acme.test"].error == "recipient unconfirmed"
    assert _queued(work) == []


async def test_a5_each_confirmed_recipient_gets_one_mail_and_the_others_are_skipped() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test", "boss@acme.test", "new@acme.test"]))
    await _confirmed(work, "lead@acme.test", "boss@acme.test")
    req = _request(["lead@acme.test", "boss@acme.test", "new@acme.test"])
    await _dispatch(work, req, req)
    assert sorted(m.rcpt_to for m in _queued(work)) == ["boss@acme.test", "lead@acme.test"]
    assert work.tables.deliveries[req.alert_id, "new@acme.test"].status == "skipped"
    assert _outcomes(work) == []


async def test_a5_a_recipient_removed_from_the_action_since_is_not_mailed() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test", "boss@acme.test"]))
    await _confirmed(work, "lead@acme.test", "boss@acme.test")
    await _save(work, _flow(["lead@acme.test"], version=2))
    req = _request(["lead@acme.test", "boss@acme.test"])
    await _dispatch(work, req)
    assert [m.rcpt_to for m in _queued(work)] == ["lead@acme.test"]
    assert work.tables.deliveries[req.alert_id, "boss@acme.test"].error == handlers.REMOVED


async def test_a7_a_template_over_its_budget_fails_its_own_alert_only() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"]))
    await _confirmed(work, "lead@acme.test")
    bomb = _request(["lead@acme.test"], body="{{ 'x' * event.e }}")
    bomb = bomb.model_copy(update={"event": {"e": 10_000_000}})
    fine = _request(["lead@acme.test"])
    await _dispatch(work, bomb, fine)
    (outcome,) = _outcomes(work)
    assert outcome.alert_id == bomb.alert_id and outcome.type == "failed"
    assert outcome.reason.startswith("Failed: the alert could not be built")
    assert [m.dedupe_key for m in _queued(work)] == [f"alert:{fine.alert_id}:lead@acme.test"]


# --- A5, A6, A8, A9: sending and outcomes (the mail worker's steps) ---------------------


async def _one_alert_queued(work: MemoryAlertWork, *emails: str) -> AlertRequested:
    await _save(work, _flow(list(emails)))
    await _confirmed(work, *emails)
    req = _request(list(emails))
    await _dispatch(work, req)
    return req


async def test_a6_the_outcome_is_published_once_when_the_last_mail_is_done() -> None:
    work = _work()
    req = await _one_alert_queued(work, "lead@acme.test", "boss@acme.test")
    first, second = _queued(work, status="sent")
    await handlers.on_final(work, [first])
    assert _outcomes(work) == []
    await handlers.on_final(work, [second])
    await handlers.on_final(work, [second])
    (outcome,) = _outcomes(work)
    assert (outcome.type, outcome.recipients) == ("sent", ["boss@acme.test", "lead@acme.test"])
    assert work.tables.alerts[req.alert_id].status == "sent"


async def test_a9_a_permanent_refusal_is_kept_per_recipient() -> None:
    work = _work()
    req = await _one_alert_queued(work, "lead@acme.test", "boss@acme.test")
    failed, sent = _queued(work)
    await handlers.on_final(
        work,
        [replace(failed, status="failed", error="550 no such user"), replace(sent, status="sent")],
    )
    (outcome,) = _outcomes(work)
    assert outcome.type == "sent" and outcome.failed_recipients == [failed.rcpt_to]
    assert work.tables.deliveries[req.alert_id, failed.rcpt_to].error == "550 no such user"


async def test_a9_every_recipient_refused_fails_the_alert() -> None:
    work = _work()
    await _one_alert_queued(work, "lead@acme.test")
    await handlers.on_final(work, _queued(work, status="failed", error="550"))
    (outcome,) = _outcomes(work)
    assert (outcome.type, outcome.reason) == ("failed", ALL_REFUSED)


async def test_a5_a_recipient_who_unsubscribed_before_sending_is_not_mailed() -> None:
    work = _work()
    req = await _one_alert_queued(work, "lead@acme.test")
    claimed = _queued(work)
    await handlers.click(work, ACCT, "lead@acme.test", 1, on_unsubscribe)
    assert await handlers.admit(work, claimed) == set()
    assert work.tables.mails[claimed[0].id].status == "cancelled"
    (outcome,) = _outcomes(work)
    assert (outcome.type, outcome.reason) == ("skipped", NO_CONFIRMED)
    assert work.tables.deliveries[req.alert_id, "lead@acme.test"].error == (
        "recipient disabled at send time"
    )


async def test_a8_mails_over_the_limit_wait_for_the_next_window_and_none_is_dropped() -> None:
    work = _work()
    await _one_alert_queued(work, "a@acme.test", "b@acme.test", "c@acme.test")
    claimed = _queued(work)
    admitted = await handlers.admit(work, claimed)
    assert admitted == {claimed[0].id, claimed[1].id}  # SETTINGS: 2 an hour
    held = work.tables.mails[claimed[2].id]
    assert held.status == "pending" and held.next_attempt_at is not None
    assert held.next_attempt_at > work.tables.clock
    work.tables.clock = held.next_attempt_at
    assert await handlers.admit(work, [claimed[2]]) == {claimed[2].id}


async def test_a8_a_retry_was_counted_already_and_confirmations_count_too() -> None:
    work = _work()
    await work.limits.set_send_limit(ACCT, 1)
    await _save(work, _flow(["a@acme.test", "b@acme.test"]))
    confirmations = _queued(work, CONFIRMATION)
    retry = replace(confirmations[0], attempts=1)
    admitted = await handlers.admit(work, [retry, confirmations[1]])
    assert admitted == {retry.id, confirmations[1].id}
    third = await handlers.resend_confirmation(work, ACCT, "a@acme.test", "n")
    extra = [m for m in _queued(work, CONFIRMATION) if m.id == third.mail_id]
    assert await handlers.admit(work, extra) == set()


# --- X4: an outcome carries the trace of its request ---------------------------------------


def _outcome_headers(work: MemoryAlertWork) -> dict[str, Any]:
    return {m.alert_id: h for _, _, m, h in work.tables.outbox}


async def test_x4_an_outcome_recorded_after_sending_carries_its_requests_trace() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"]))
    await _confirmed(work, "lead@acme.test")
    first, second = _request(["lead@acme.test"]), _request(["lead@acme.test"])
    traced = Trace("c-first", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    await handlers.dispatch(
        [Received(first, object(), traced), Received(second, object(), Trace("c-second"))],  # type: ignore[arg-type]
        work,
    )
    await handlers.on_final(work, _queued(work, status="sent"))
    assert _outcome_headers(work) == {
        first.alert_id: traced.headers(),
        second.alert_id: {"correlation_id": "c-second"},
    }


async def test_x4_an_outcome_recorded_at_once_carries_its_own_requests_trace() -> None:
    work = _work()
    await _save(work, _flow(["lead@acme.test"]))
    reqs = [_request(["lead@acme.test"]), _request(["lead@acme.test"])]
    await handlers.dispatch(
        [Received(r, object(), Trace(f"c-{n}")) for n, r in enumerate(reqs)],  # type: ignore[arg-type]
        work,
    )
    assert _outcome_headers(work) == {
        reqs[0].alert_id: {"correlation_id": "c-0"},
        reqs[1].alert_id: {"correlation_id": "c-1"},
    }


# --- P1, P2: privacy requests through the same work ----------------------------------------


def _privacy(action: str, **named: Any) -> PrivacyRequest:
    return PrivacyRequest.model_validate(
        {
            "request_id": uuid.uuid4().hex,
            "account_id": ACCT,
            "action": action,
            "requested_at": "2026-01-01T00:00:00Z",
            **named,
        }
    )


async def test_p1_p2_a_persons_alerts_are_found_by_address_exported_and_erased() -> None:
    work = _work()
    req = await _one_alert_queued(work, "lead@acme.test")
    await privacy_requests.handle([_received(_privacy("export", email="ADA@example.test"))], work)
    (_, _, export, _) = work.tables.outbox[-1]
    assert export.profile_ids == ["p-1"]
    assert [a["alert_id"] for a in export.data["alerts"]] == [req.alert_id]
    await privacy_requests.handle([_received(_privacy("erase", profile_id="p-1"))], work)
    (_, _, erased, _) = work.tables.outbox[-1]
    assert erased.erased == {"mail_queue": 1, "alert_deliveries": 1, "alerts": 1, "outbox": 0}
    assert work.tables.alerts[req.alert_id].status == "skipped"
    assert [m.status for m in work.tables.mails.values() if m.kind == ALERT] == ["cancelled"]
