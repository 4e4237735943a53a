"""One contract for the repositories of `ports.AlertWork` (and its `queue_mail` and
`publish`), run against the in-memory work that the unit tests use and the PostgreSQL
work that the service uses, both made by `bootstrap`, so the fake cannot drift from what
the database does."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest

from services.alert_dispatcher.adapters.memory import MemoryAlertWork, MemoryTables
from services.alert_dispatcher.bootstrap import bootstrap
from services.alert_dispatcher.domain.limits import Window
from services.alert_dispatcher.domain.recipients import Recipient
from services.alert_dispatcher.ports import ActionKey, AlertAction, Delivery, NewAlert
from shared.contracts import AlertOutcome, topics
from shared.db import Database
from shared.db.migrations import migration_files
from shared.ports import OutgoingMail, QueuedMail
from shared.settings import Settings

A = "acme"
# The service's default sending limit, bound into both works as the service binds it.
SETTINGS = Settings(alert_send_limit_per_hour=50, alert_send_window_s=3600)


@dataclass
class Harness:
    store: Any
    published: Callable[[], list[tuple[str, str | None]]]


@pytest.fixture(params=["memory", "postgres"])
def backend(request: pytest.FixtureRequest) -> Any:
    """None for the in-memory store, else the embedded stack (started only for it)."""
    return request.getfixturevalue("stack") if request.param == "postgres" else None


@pytest.fixture
async def h(backend: Any) -> AsyncIterator[Harness]:
    if backend is None:
        tables = MemoryTables()
        work = bootstrap(SETTINGS, MemoryAlertWork)(tables)
        yield Harness(work, lambda: [(t, k) for t, k, _, _ in tables.outbox])
        return
    stack = backend
    db = Database(stack.dsn, f"t_{uuid.uuid4().hex[:8]}", 2)
    await db.start()
    async with db.pool.acquire() as conn:
        for _, sql in migration_files("alert_dispatcher"):
            await conn.execute(sql)
    try:
        async with db.uow() as uow:  # rolled back at the end
            yield Harness(
                bootstrap(SETTINGS)(uow),
                lambda: [(t, k.decode() if k else None) for t, k, _, _ in uow._outbox],
            )
    finally:
        async with db.pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA "{db.schema}" CASCADE')
        await db.close()


def _mail(key: str, rcpt: str, kind: str = "alert", sender: str = "a@acme.test") -> OutgoingMail:
    message = Message()
    message["Message-ID"] = f"<{key}@test>"
    message.set_payload("hi")
    return OutgoingMail(key, kind, A, message, sender, rcpt)


def _alert(alert_id: str, step_id: str = "alert") -> NewAlert:
    return NewAlert(alert_id, A, "nps", 1, step_id, "p-1", datetime.now(UTC), ["h"])


def _claimed(mail_id: int, rcpt: str, **answer: Any) -> QueuedMail:
    return QueuedMail(mail_id, f"k{mail_id}", "alert", A, rcpt, 0, **answer)


async def test_recipients_are_saved_read_in_order_and_unknown_ones_absent(h: Harness) -> None:
    s = h.store
    await s.recipients.save(A, Recipient("b@acme.test", "unconfirmed", 1))
    await s.recipients.save(A, Recipient("a@acme.test", "unconfirmed", 1))
    await s.recipients.save(A, Recipient("a@acme.test", "confirmed", 2))
    got = await s.recipients.find(A, ["b@acme.test", "a@acme.test", "x@acme.test"], lock=True)
    assert list(got) == ["a@acme.test", "b@acme.test"]
    assert got["a@acme.test"] == Recipient("a@acme.test", "confirmed", 2)
    assert await s.recipients.find("other", ["a@acme.test"]) == {}


async def test_asked_is_none_for_strangers_and_keeps_the_last_sender(h: Harness) -> None:
    s = h.store
    assert await s.recipients.asked(A, "a@acme.test") is None
    await s.recipients.mark_asked(A, "a@acme.test", "x@acme.test")  # nobody to mark
    assert await s.recipients.asked(A, "a@acme.test") is None
    await s.recipients.save(A, Recipient("a@acme.test", "unconfirmed", 1))
    assert (await s.recipients.asked(A, "a@acme.test")).sender is None
    await s.recipients.mark_asked(A, "a@acme.test", "team@acme.test")
    await s.recipients.save(A, Recipient("a@acme.test", "confirmed", 1))
    assert (await s.recipients.asked(A, "a@acme.test")).sender == "team@acme.test"


async def test_only_a_newer_version_is_taken_and_delete_clears_actions(h: Harness) -> None:
    s = h.store
    assert await s.flows.take_version(A, "nps", 2)
    assert not await s.flows.take_version(A, "nps", 2)
    assert not await s.flows.take_version(A, "nps", 1)
    await s.flows.replace_actions(A, "nps", 2, [AlertAction("x", "live", ["a@acme.test"])])
    await s.flows.delete(A, "nps")
    assert await s.flows.actions(A, "nps") == {}
    assert await s.flows.take_version(A, "nps", 3)


async def test_replace_actions_drops_steps_no_longer_listed(h: Harness) -> None:
    s = h.store
    await s.flows.replace_actions(
        A,
        "nps",
        1,
        [AlertAction("x", "live", ["a@acme.test"]), AlertAction("y", "manual", ["b@acme.test"])],
    )
    await s.flows.replace_actions(A, "nps", 2, [AlertAction("y", "live", ["c@acme.test"])])
    assert await s.flows.actions(A, "nps") == {"y": {"c@acme.test"}}
    keys = {ActionKey(A, "nps", "x"), ActionKey(A, "nps", "y")}
    assert await s.flows.action_recipients(keys) == {ActionKey(A, "nps", "y"): {"c@acme.test"}}
    assert await s.flows.action_recipients(set()) == {}


async def test_a_mail_is_queued_once_per_dedupe_key(h: Harness) -> None:
    s = h.store
    first = await s.queue_mail([_mail("k1", "a@acme.test"), _mail("k2", "a@acme.test")])
    again = await s.queue_mail([_mail("k1", "a@acme.test"), _mail("k3", "a@acme.test")])
    assert set(first) == {"k1", "k2"} and set(again) == {"k3"}
    assert len({*first.values(), *again.values()}) == 3
    await s.queue_mail([_mail("c1", "a@acme.test", "conf", "old@acme.test")])
    await s.queue_mail([_mail("c2", "a@acme.test", "conf", "new@acme.test")])
    assert await s.mails.last_sender(A, "a@acme.test", "conf") == "new@acme.test"
    assert await s.mails.last_sender(A, "b@acme.test", "conf") is None


async def _two_deliveries(s: Any) -> dict[str, int]:
    ids = await s.queue_mail([_mail("m-a", "a@acme.test"), _mail("m-b", "b@acme.test")])
    await s.alerts.add([_alert("al-1"), _alert("al-1")])
    await s.alerts.add_deliveries(
        [
            Delivery("al-1", "a@acme.test", ids["m-a"], "pending"),
            Delivery("al-1", "b@acme.test", ids["m-b"], "pending"),
            Delivery("al-1", "c@acme.test", None, "skipped", "recipient unconfirmed"),
        ]
    )
    return ids


async def test_a_delivery_is_finished_once(h: Harness) -> None:
    s = h.store
    ids = await _two_deliveries(s)
    done = _claimed(ids["m-a"], "a@acme.test", status="failed", error="550")
    assert await s.alerts.finish_deliveries([done]) == ["al-1"]
    assert await s.alerts.finish_deliveries([done]) == []
    assert await s.alerts.delivery_statuses(["al-1"]) == {
        "al-1": {"a@acme.test": "failed", "b@acme.test": "pending", "c@acme.test": "skipped"}
    }


async def test_finish_and_lock_records_the_answers_and_locks_their_alerts_still_sending(
    h: Harness,
) -> None:
    """The mail worker's finishing in one statement: the deliveries recorded as
    `finish_deliveries` does, and the alerts they belong to locked as `lock_sending` does
    (each once, only while `sending`)."""
    s = h.store
    ids = await _two_deliveries(s)
    a = _claimed(ids["m-a"], "a@acme.test", status="sent")
    b = _claimed(ids["m-b"], "b@acme.test", status="failed", error="550")
    assert await s.alerts.finish_and_lock([]) == []
    sending = await s.alerts.finish_and_lock([a, a])
    assert [(x.alert_id, x.profile_id, x.step_id) for x in sending] == [("al-1", "p-1", "alert")]
    assert await s.alerts.finish_and_lock([a]) == []  # answered already: nothing to lock
    out = AlertOutcome(
        type="sent", alert_id="al-1", account_id=A, flow_id="f", step_id="alert", profile_id="p-1"
    )
    await s.alerts.complete([out])
    assert await s.alerts.finish_and_lock([b]) == []  # recorded; its alert is done
    assert await s.alerts.delivery_statuses(["al-1"]) == {
        "al-1": {"a@acme.test": "sent", "b@acme.test": "failed", "c@acme.test": "skipped"}
    }


async def test_an_alert_completes_once_and_then_is_no_longer_sending(h: Harness) -> None:
    s = h.store
    await s.alerts.add([_alert("al-1"), _alert("al-2")])
    sending = await s.alerts.lock_sending(["al-2", "al-1", "al-1", "al-9"])
    assert [a.alert_id for a in sending] == ["al-1", "al-2"]
    assert sending[0].profile_id == "p-1" and sending[0].step_id == "alert"
    out = AlertOutcome(
        type="skipped", alert_id="al-1", account_id=A, flow_id="nps", step_id="alert",
        profile_id="p-1", reason="r",
    )  # fmt: skip
    await s.alerts.complete([out])
    await s.alerts.complete([out.model_copy(update={"type": "sent"})])
    assert [a.alert_id for a in await s.alerts.lock_sending(["al-1", "al-2"])] == ["al-2"]
    s.publish(topics.ALERT_OUTCOMES, out.profile_id, out)
    assert h.published() == [(topics.ALERT_OUTCOMES, "p-1")]


async def test_x4_a_sending_alert_comes_back_with_the_trace_of_its_request(h: Harness) -> None:
    s = h.store
    trace = {"correlation_id": "c-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    await s.alerts.add([replace(_alert("al-1"), trace=trace), _alert("al-2")])
    sending = {a.alert_id: a.trace for a in await s.alerts.lock_sending(["al-1", "al-2"])}
    assert sending == {"al-1": trace, "al-2": None}


async def test_recipient_states_at_send_time(h: Harness) -> None:
    s = h.store
    await s.flows.replace_actions(A, "nps", 1, [AlertAction("alert", "live", ["a@acme.test"])])
    await s.recipients.save(A, Recipient("a@acme.test", "confirmed", 1))
    await s.recipients.save(A, Recipient("b@acme.test", "disabled", 1))
    ids = await _two_deliveries(s)
    loose = await s.queue_mail([_mail("m-x", "b@acme.test"), _mail("m-y", "z@acme.test")])
    states = await s.recipients.states(
        [
            _claimed(ids["m-a"], "A@acme.test"),
            _claimed(ids["m-b"], "b@acme.test"),
            _claimed(loose["m-x"], "b@acme.test"),
            _claimed(loose["m-y"], "z@acme.test"),
        ]
    )
    assert states == {
        ids["m-a"]: "confirmed",
        ids["m-b"]: "removed from the alert",
        loose["m-x"]: "disabled",
        loose["m-y"]: "not registered",
    }


async def test_skipped_mails_skip_their_pending_delivery_with_the_status(h: Harness) -> None:
    s = h.store
    ids = await _two_deliveries(s)
    assert await s.mails.cancel({ids["m-b"]: "disabled"}, "recipient not confirmed") == ["al-1"]
    assert await s.mails.cancel({ids["m-b"]: "disabled"}, "recipient not confirmed") == []
    assert (await s.alerts.delivery_statuses(["al-1"]))["al-1"]["b@acme.test"] == "skipped"
    assert await s.mails.cancel({}, "x") == []


async def test_sending_limit_and_window_counter(h: Harness) -> None:
    s = h.store
    assert await s.limits.send_limit(A) == 50
    await s.limits.set_send_limit(A, 7)
    assert await s.limits.send_limit(A) == 7
    start = datetime(2025, 1, 6, 10, tzinfo=UTC)
    assert await s.limits.lock_window(A, start) == 0
    await s.limits.count_sent(A, start, 3)
    assert await s.limits.lock_window(A, start) == 3
    assert isinstance(await s.limits.current_window(), Window)
    ids = await _two_deliveries(s)
    await s.mails.defer([ids["m-a"]], start)
    await s.mails.defer([], start)


async def test_a8_open_window_reads_window_counter_and_limit_together(h: Harness) -> None:
    """What the mail worker's claim reads per account in one statement: the window now,
    the account's counter in it (created at 0, then what was counted) and its limit (its
    own, else the service's)."""
    s = h.store
    window = await s.limits.current_window()
    opened = await s.limits.open_window(A)
    assert (opened.window, opened.used, opened.limit) == (window, 0, 50)
    assert opened.window.end - opened.window.start == timedelta(hours=1)
    await s.limits.count_sent(A, opened.window.start, 4)
    await s.limits.set_send_limit(A, 7)
    again = await s.limits.open_window(A)
    assert (again.window, again.used, again.limit) == (window, 4, 7)
    assert (await s.limits.open_window("other")).used == 0


async def test_page_settings_of_accounts_that_set_some(h: Harness) -> None:
    s = h.store
    await s.accounts.save_pages(A, {"display_name": "Acme", "language": "de"})
    got = await s.accounts.pages([A, "other"])
    assert list(got) == [A]
    assert (got[A].display_name, got[A].language) == ("Acme", "de")


async def test_i1_a_recipient_keeps_the_spelling_to_mail_and_a_save_without_one_keeps_it(
    h: Harness,
) -> None:
    s = h.store
    key = "lead@xn--bcher-kva.de"
    await s.recipients.save(A, Recipient(key, "unconfirmed", 1, "Lead@xn--bcher-kva.de"))
    await s.recipients.save(A, Recipient(key, "confirmed", 1))
    got = (await s.recipients.find(A, [key]))[key]
    assert (got.status, got.address, got.mail_to) == (
        "confirmed",
        "Lead@xn--bcher-kva.de",
        "Lead@xn--bcher-kva.de",
    )


async def test_i1_recipient_states_at_send_time_read_any_spelling_of_the_recipient(
    h: Harness,
) -> None:
    s = h.store
    await s.recipients.save(A, Recipient("lead@xn--bcher-kva.de", "disabled", 1))
    queued = await s.queue_mail(
        [
            _mail("m-nfd", unicodedata.normalize("NFD", "LEAD@Bücher.de")),
            _mail("m-p", "Lead@xn--bcher-kva.de"),
        ]
    )
    states = await s.recipients.states(
        [
            _claimed(i, m)
            for m, i in (
                (unicodedata.normalize("NFD", "LEAD@Bücher.de"), queued["m-nfd"]),
                ("Lead@xn--bcher-kva.de", queued["m-p"]),
            )
        ]
    )
    assert set(states.values()) == {"disabled"}
