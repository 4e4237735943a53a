"""Stateful properties of the pure consent and suppression domain against the reference
model (X3, C5, C6, C8–C11, C13, S3–S6).

Random sequences of producer commands (every action, method, scope, list, evidence,
historical import, past-, equal- and future-dated), SMS keywords, link clicks,
confirmation clicks, suppression commands (spam complaints global and per list, hard
and soft bounces, deliveries, manual), duplicates, delivered to the consent domain in a
random arrival order. Invariants, each a named check:

(a) `check_a_state_equals_model`: the state equals the reference model's after every
    delivery, and the same acts in other arrival orders give the same state;
(b) `check_b_opt_out_reversed_only_by_own_act`;
(c) `check_c_events_match_transitions` (stale and rejected acts emit nothing);
(d) `check_d_person_told_the_truth` (STOP/START replies, unsubscribe page);
(e) `check_e_can_receive_agrees` (consent read side vs the executor's read model).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from services.consent.domain.keywords import reply_kind
from services.consent.domain.model import SMS_SLOTS, Act, Logged, Policy, ProfileConsent
from services.consent.domain.rules import PHONE_CHANGED, decide, live_time, unsubscribe_done
from services.consent.handlers import consent_state
from services.flow_executor.domain.reachability import blocked_reason
from services.suppression.domain.rules import (
    Command,
    SuppressionState,
    on_consent_change,
)
from services.suppression.domain.rules import decide as suppress
from shared.contracts.flows import EmailStep, SmsStep
from shared.domain.reachability import can_receive
from tests.model.reference import ConsentModel, Received, SuppressionModel

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
LIMIT = 3
LISTS = (None, None, "L1", "L2")
SCOPES = ("group", "group", "group", "client:c1", "user:c1/u1")
PHONES = ("+15550001", "+15550002")
OFFSETS = (
    timedelta(hours=-3),
    timedelta(minutes=-30),
    timedelta(minutes=-1),
    timedelta(0),
    timedelta(minutes=3),  # within the clock skew: kept
    timedelta(hours=2),  # future: clamped to receipt
    timedelta(days=400),
)
METHODS = ("form", "api", "import", "manual", "link", "keyword", "preference_center")
EVIDENCE = (None, None, "", "signed form #7")
PROFILE = {"email": "ada@example.com"}


def to_model(entry: Logged) -> Received:
    a = entry.act
    return Received(
        act_id=a.act_id,
        action=a.action,
        channel=a.channel,
        claimed_at=a.claimed_at or a.act_at,
        received_at=entry.received_at,
        purpose=a.purpose,
        list_id=a.list_id,
        scope=a.scope,
        evidence=a.evidence,
        historical_import=a.historical_import,
        phone=a.phone_number,
        own=a.confirmed,
        double_opt_in=entry.policy.email_double_opt_in,
        manual_suppression=entry.policy.manually_suppressed,
        spam_suppression=entry.policy.spam_suppressed,
    )


def visible(state: ProfileConsent) -> tuple[dict[str, str], str | None]:
    slots, phone = state.signature()
    return dict(slots), phone


def event_slot(type_: str, list_id: str | None, scope: str | None) -> tuple[str, str]:
    """The slot and status a C9 event claims."""
    if type_.startswith("Subscribed to List"):
        return f"list:{list_id}", "subscribed"
    if type_ == "Unsubscribed from List":
        return f"list:{list_id}", "unsubscribed"
    if "Email" in type_:
        slot = "email" if scope in (None, "group") else f"scope:{scope}"
        return slot, "subscribed" if type_.startswith("Subscribed") else "unsubscribed"
    if type_ == "Subscribed to SMS Marketing":
        return "sms_marketing", "subscribed"
    if type_ == "Subscribed to SMS Transactional":
        return "sms_transactional", "subscribed"
    if type_ == "Unsubscribed from SMS":
        return "sms_marketing", "unsubscribed"
    return "push", "subscribed" if type_.startswith("Subscribed") else "unsubscribed"


def replay(log: list[Logged]) -> ProfileConsent:
    state = ProfileConsent()
    for e in log:
        state = decide(state, e.act, e.policy, e.received_at).state
    return state


class ConsentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = T0
        self.n = 0
        self.doi = True
        self.phone: str | None = None
        self.pending: list[Act] = []
        self.log: list[Logged] = []
        self.state = ProfileConsent()
        self.model = ConsentModel()
        self.sup = SuppressionState()
        self.sup_model = SuppressionModel(LIMIT)
        self.executor_consent: dict | None = None  # the state carried by the newest event
        self.confirmations: list[tuple[str | None, str]] = []

    # -- inputs ----------------------------------------------------------------------
    @initialize(doi=st.booleans(), phone=st.sampled_from((None, *PHONES)))
    def account(self, doi: bool, phone: str | None) -> None:
        self.doi, self.phone = doi, phone

    def next_id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n:03d}"

    @rule(
        action=st.sampled_from(("subscribe", "subscribe", "unsubscribe", "resubscribe")),
        channel=st.sampled_from(("email", "email", "sms", "push")),
        purpose=st.sampled_from(("marketing", "transactional")),
        list_id=st.sampled_from(LISTS),
        scope=st.sampled_from(SCOPES),
        method=st.sampled_from(METHODS),
        evidence=st.sampled_from(EVIDENCE),
        historical=st.sampled_from((False, False, True)),
        offset=st.sampled_from(OFFSETS),
        new_phone=st.sampled_from((None, None, None, *PHONES)),
    )
    def producer_command(
        self,
        action,
        channel,
        purpose,
        list_id,
        scope,
        method,
        evidence,
        historical,
        offset,
        new_phone,
    ) -> None:
        if new_phone:
            self.phone = new_phone
        self.pending.append(
            Act(
                act_id=self.next_id("cmd-"),
                action=action,
                channel=channel,
                act_at=self.clock + offset,
                purpose=purpose,
                list_id=list_id,
                scope=scope,
                method=method,
                evidence=evidence,
                historical_import=historical,
                phone_number=self.phone,
            )
        )

    @rule(word=st.sampled_from(("STOP", "START")), offset=st.sampled_from(OFFSETS[:4]))
    def sms_keyword(self, word: str, offset: timedelta) -> None:
        if self.phone is None:
            return
        self.pending.append(
            Act(
                act_id=self.next_id("sms:"),
                action="unsubscribe" if word == "STOP" else "subscribe",
                channel="sms",
                act_at=self.clock + offset,
                method="keyword",
                phone_number=self.phone,
                confirmed=word == "START",
            )
        )

    @rule(list_id=st.sampled_from(LISTS), scope=st.sampled_from(SCOPES))
    def unsubscribe_link(self, list_id: str | None, scope: str) -> None:
        self.tick()
        act = Act(
            act_id=self.next_id("unsub:"),
            action="unsubscribe",
            channel="email",
            act_at=live_time(self.clock),
            list_id=list_id,
            scope=scope,
            method="link",
            clicked=True,
        )
        out = self.deliver(act)
        self.check_d_person_told_the_truth(act, out)

    @precondition(lambda self: bool(self.confirmations))
    @rule(data=st.data())
    def confirmation_click(self, data) -> None:
        list_id, scope = data.draw(st.sampled_from(self.confirmations))
        self.tick()
        self.deliver(
            Act(
                act_id=self.next_id("confirm:"),
                action="subscribe",
                channel="email",
                act_at=live_time(self.clock),
                list_id=list_id,
                scope=scope,
                method="link",
                confirmed=True,
            )
        )

    @rule(
        action=st.sampled_from(("suppress", "suppress", "unsuppress")),
        reason=st.sampled_from(
            ("spam_complaint", "hard_bounce", "soft_bounce", "soft_bounce", "delivered", "manual")
        ),
        list_id=st.sampled_from(LISTS),
        offset=st.sampled_from(OFFSETS[:4]),
    )
    def suppression_command(self, action, reason, list_id, offset) -> None:
        self.tick()
        at = self.clock + offset
        out = suppress(self.sup, Command(action, reason, at, "email", list_id), LIMIT)
        if out.rejection is None:
            self.sup = out.state
        self.sup_model.command(action, reason, list_id, at)
        assert self.in_force() == self.sup_model.in_force()
        for change in out.changes:
            if change.type == "suppressed" and change.reason == "spam_complaint":
                self.pending.append(  # S3: to consent, ordered by when it happened
                    Act(
                        act_id=self.next_id("spam:"),
                        action="unsubscribe",
                        channel="email",
                        act_at=change.at or at,
                        list_id=change.list_id,
                        method="spam_complaint",
                    )
                )

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def deliver_one(self, data) -> None:
        act = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        self.tick()
        out = self.deliver(act)
        if act.method == "keyword" and act.act_id.startswith("sms:"):
            self.check_d_person_told_the_truth(act, out)

    @precondition(lambda self: bool(self.log))
    @rule(data=st.data())
    def duplicate(self, data) -> None:
        entry = data.draw(st.sampled_from(self.log))
        out = decide(self.state, entry.act, self.policy(), self.clock)
        assert out.state == self.state and not out.events and not out.history

    # -- the system under test --------------------------------------------------------
    def tick(self) -> None:
        self.clock += timedelta(minutes=7)

    def in_force(self) -> list[dict]:
        return sorted(
            ({**s.to_json(), "channel": s.channel} for s in self.sup.suppressions),
            key=lambda s: str((s["channel"], s["reason"], s["list_id"])),
        )

    def policy(self) -> Policy:
        reasons = {s.reason for s in self.sup.suppressions if s.list_id is None}
        return Policy(self.doi, "manual" in reasons, "spam_complaint" in reasons)

    def deliver(self, act: Act):
        before, policy = self.state, self.policy()
        out = decide(before, act, policy, self.clock)
        entry = out.state.log[-1]
        self.log.append(entry)
        self.model.receive(to_model(entry))
        self.state = out.state
        self.check_b_opt_out_reversed_only_by_own_act(before, out, entry.act)
        self.check_c_events_match_transitions(before, out, entry.act)
        if out.events:
            self.executor_consent = consent_state(out.state).model_dump(mode="json")
        for event in out.events:  # suppression-changes <= consent-changes (S5, C9)
            if event.type in ("Subscribed to Email Marketing", "Subscribed to List"):
                lifted = on_consent_change(
                    self.sup,
                    event.type,
                    act.evidence,
                    act.historical_import,
                    entry.act.act_at,
                    event.scope,
                    event.list_id,
                )
                for change in lifted.changes:
                    assert change.reason != "spam_complaint" or entry.act.has_evidence
                self.sup = lifted.state
                self.sup_model.lift(
                    event.list_id if event.type == "Subscribed to List" else None,
                    entry.act.has_evidence,
                    entry.act.act_at,
                    act.historical_import,
                    event.scope,
                )
        if out.confirmation is not None:
            self.confirmations.append((out.confirmation.list_id, out.confirmation.scope))
        return out

    # -- the named checks -------------------------------------------------------------
    @invariant()
    def check_a_state_equals_model(self) -> None:
        slots, phone = self.model.answer()
        assert visible(self.state) == (slots, phone)

    def check_b_opt_out_reversed_only_by_own_act(self, before, out, act: Act) -> None:
        phone_changed = before.phone_number != out.state.phone_number
        for key, slot in out.state.slots.items():
            if before.status(key) == "unsubscribed" and slot.status == "subscribed":
                if key in SMS_SLOTS and phone_changed:
                    continue  # C6: a new number's consent is its own
                assert act.confirmed or act.has_evidence, (key, act)

    def check_c_events_match_transitions(self, before, out, act: Act) -> None:
        if out.rejection is not None or out.stale:
            assert not out.events, out
            assert out.state.signature() == before.signature()
        reset = any(
            out.state.status(k) == "never_subscribed" != before.status(k) for k in SMS_SLOTS
        )
        if before.phone_number != out.state.phone_number:  # C6: the new number starts afresh
            reset = True
            before = replace(
                before, slots={k: v for k, v in before.slots.items() if k not in SMS_SLOTS}
            )
        claimed = set()
        if out.events and reset and out.state.phone_number in before.opted_out_numbers:
            # C11: a number coming back is still opted out; every event carries the full
            # state, so the restored opt-out is published with whichever is sent.
            claimed.update(k for k in SMS_SLOTS if out.state.status(k) == "unsubscribed")
        for e in out.events:
            if e.type == PHONE_CHANGED.type:  # C6, F7: SMS consent now starts afresh
                assert reset, (e, before.phone_number, out.state.phone_number)
                continue
            slot, status = event_slot(e.type, e.list_id, e.scope)
            if e.type == "Unsubscribed from SMS":
                assert any(
                    out.state.status(k) == "unsubscribed" != before.status(k) for k in SMS_SLOTS
                )
                claimed.update(SMS_SLOTS)
                continue
            assert out.state.status(slot) == status, (e, out.state.slots)
            relift = slot == "email" and status == "subscribed"
            assert before.status(slot) != status or relift, (e, before.slots)
            if e.type.startswith("Clicked"):
                assert act.clicked or act.method == "link"
            claimed.add(slot)
        for key in set(out.state.slots) | set(before.slots):
            new = out.state.status(key)
            if new != before.status(key) and new != "never_subscribed":
                covered = (
                    key == "sms_transactional"
                    and out.state.status("sms_marketing") == "subscribed"  # C5
                ) or (key.startswith("list:") and out.state.status("email") == "unsubscribed")
                assert key in claimed or covered, (key, out.events)

    def check_d_person_told_the_truth(self, act: Act, out) -> None:
        if act.method == "keyword":
            word = "stop" if act.action == "unsubscribe" else "start"
            kind = reply_kind(word, [out.state])
            sms = {out.state.status(k) for k in SMS_SLOTS}
            if kind == "stop":
                assert "subscribed" not in sms
            if kind == "start":
                assert out.state.status("sms_marketing") == "subscribed"
            if out.stale and "subscribed" in sms:
                assert kind != "stop"
        else:
            # The page says "Unsubscribed" only when it is true, and a live click of the
            # person always wins (X3), unless the link asks for what cannot be done (X3a).
            done = unsubscribe_done(out, act)
            assert done == (out.rejection is None), (act, out.rejection, out.state.slots)

    @invariant()
    def check_e_can_receive_agrees(self) -> None:
        seen = (self.state.signature(), str(self.executor_consent), self.sup.suppressions)
        if seen == getattr(self, "_checked", None):
            return  # nothing either side decides by has changed since the last check
        self._checked = seen
        sups = [s.to_json() for s in self.sup.suppressions]
        contact = {**PROFILE, "phone_number": self.state.phone_number}
        mine = self.state.view()
        for channel in ("email", "sms_marketing", "sms_transactional", "push"):
            for list_id, client, user in (
                (None, None, None),
                ("L1", "c1", "u1"),
                ("L2", "c1", None),
            ):
                where = {"list_id": list_id, "client_id": client, "user_id": user}
                consent_side = can_receive(mine, sups, channel, contact=contact, **where)
                executor_side = can_receive(
                    self.executor_consent, sups, channel, contact=contact, **where
                )
                assert consent_side == executor_side, (channel, where)
                if channel == "push":
                    continue
                step = (
                    EmailStep(id="m", type="email", list_id=list_id, client_id=client, user_id=user)
                    if channel == "email"
                    else SmsStep(id="t", type="sms", purpose=channel.removeprefix("sms_"))
                )
                reason = blocked_reason(step, self.executor_consent, sups, contact)
                assert (reason is None) == executor_side

    def teardown(self) -> None:
        while self.pending:
            self.tick()
            self.deliver(self.pending.pop())
        self.check_a_state_equals_model()
        # (a) arrival order does not matter: the same receipts in other orders.
        final = visible(self.state)
        by_time = sorted(self.log, key=lambda e: e.act.version)
        assert visible(replay(by_time)) == final
        assert visible(replay(list(reversed(self.log)))) == final


ConsentMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_x3_c11_s5_consent_against_reference_model = ConsentMachine.TestCase


ACTS = st.builds(
    lambda n, action, channel, purpose, list_id, scope, method, evidence, historical, offset, phone, own: (  # noqa: E501
        Act(
            act_id=f"a{n}",
            action=action,
            channel=channel,
            act_at=T0 + offset,
            purpose=purpose,
            list_id=list_id,
            scope=scope,
            method=method,
            evidence=evidence,
            historical_import=historical,
            phone_number=phone,
            confirmed=own,
        )
    ),
    st.integers(0, 30),
    st.sampled_from(("subscribe", "unsubscribe", "resubscribe")),
    st.sampled_from(("email", "sms", "push")),
    st.sampled_from(("marketing", "transactional")),
    st.sampled_from(LISTS),
    st.sampled_from(SCOPES),
    st.sampled_from(METHODS),
    st.sampled_from(EVIDENCE),
    st.booleans(),
    st.sampled_from(OFFSETS),
    st.sampled_from((None, *PHONES)),
    st.booleans(),
)


# Up to eight distinct acts, the account's double opt-in choice, and an arrival order.
ARRIVALS = {
    "acts": st.lists(ACTS, max_size=8, unique_by=lambda a: a.act_id),
    "doi": st.booleans(),
    "order": st.randoms(use_true_random=False),
}


@settings(max_examples=400, deadline=None)
@given(**ARRIVALS)
def test_x3_arrival_order_never_changes_the_final_state(acts, doi, order) -> None:
    """(a) for short sequences, many orders: every permutation tried ends in the model's
    state (each act received one minute after the previous, whatever its own time)."""
    policy = Policy(doi)
    received = [(a, T0 + timedelta(minutes=i)) for i, a in enumerate(acts)]
    shuffled = received[:]
    order.shuffle(shuffled)
    finals = []
    for sequence in (received, shuffled):
        state, model = ProfileConsent(), ConsentModel()
        for act, at in sequence:
            out = decide(state, act, policy, at)
            assert not ((out.rejection or out.stale) and out.events)
            state = out.state
            model.receive(to_model(state.log[-1]))
        assert visible(state) == model.answer()
        finals.append(visible(state))
    assert finals[0] == finals[1]


@settings(max_examples=300, deadline=None)
@given(**ARRIVALS)
def test_x3_a_state_stored_between_acts_decides_as_one_kept_in_memory(acts, doi, order) -> None:
    """X3, X2: the service stores the state (with its act log, kept as JSON until read)
    after every batch and loads it for the next. Whatever the acts and their arrival
    order, deciding on the reloaded state gives the same outcome, event by event, as
    deciding on the state kept in memory, and the two end with equal logs."""
    policy = Policy(doi)
    received = [(a, T0 + timedelta(minutes=i)) for i, a in enumerate(acts)]
    order.shuffle(received)
    kept = stored = ProfileConsent()
    for act, at in received + received[:1]:  # and one redelivery (X2)
        mem = decide(kept, act, policy, at)
        loaded = ProfileConsent.from_json(json.loads(json.dumps(stored.to_json())))
        disk = decide(loaded, act, policy, at)
        assert (disk.events, disk.history, disk.rejection, disk.stale) == (
            mem.events,
            mem.history,
            mem.rejection,
            mem.stale,
        )
        assert disk.state == mem.state
        kept, stored = mem.state, disk.state
    assert list(stored.log) == list(kept.log)
