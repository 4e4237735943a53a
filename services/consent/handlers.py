"""The consent service's use cases over a unit of work: apply consent acts from commands,
SMS keywords, links and spam complaints; publish C9 events; queue confirmation emails."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.consent.adapters import mails
from services.consent.adapters import repository as repo
from services.consent.domain.keywords import DEFAULT_REPLIES, keyword
from services.consent.domain.model import (
    CHANNEL_SLOTS,
    Act,
    Outcome,
    Policy,
    ProfileConsent,
    clamp,
    normalize_phone,
    scope_name,
)
from services.consent.domain.rules import decide
from shared.contracts import (
    ChannelState,
    ConsentChanged,
    ConsentCommand,
    ConsentState,
    Profile,
    SmsInbound,
    SmsOutbound,
    SuppressionChanged,
    topics,
    utcnow,
)
from shared.db import mail_queue
from shared.db.uow import UnitOfWork
from shared.kafka import Received, dead_letter
from shared.settings import Settings

COMMANDS = f"consent.{topics.CONSENT_COMMANDS}"
SMS = f"consent.{topics.SMS_INBOUND}"
SUPPRESSIONS = f"consent.{topics.SUPPRESSION_CHANGES}"


@dataclass(frozen=True)
class Request:
    """An act for one profile, with the profile attributes that came with it."""

    account_id: str
    profile_id: str
    act: Act
    profile: dict[str, Any] | None = None

    @property
    def key(self) -> repo.Key:
        return (self.account_id, self.profile_id)


def act_from_command(cmd: ConsentCommand) -> Act:
    return Act(
        act_id=cmd.command_id,
        action=cmd.action,
        channel=cmd.channel,
        act_at=clamp(cmd.consented_at),
        purpose=cmd.purpose,
        list_id=cmd.list_id,
        scope=scope_name(cmd.scope.level, cmd.scope.client_id, cmd.scope.user_id),
        method=cmd.method,
        evidence=cmd.evidence,
        historical_import=cmd.historical_import,
        phone_number=cmd.profile.phone_number,
    )


def change_messages(
    account_id: str,
    profile_id: str,
    profile: dict[str, Any],
    act: Act,
    outcome: Outcome,
    now: datetime,
) -> list[ConsentChanged]:
    """The `consent-changes` messages of one decided act (C9): one per event, each with
    the full state after the act, and an id stable under redelivery (act id + event)."""
    if not outcome.events:
        return []
    state = consent_state(outcome.state)
    stamp = act.act_at if act.historical_import else now
    return [
        ConsentChanged(
            type=event.type,
            change_id=f"{account_id}:{act.act_id}:"
            + _short(event.type, event.list_id or "", event.scope or ""),
            account_id=account_id,
            profile_id=profile_id,
            profile=Profile.model_validate(profile),
            channel=event.channel,
            list_id=event.list_id,
            scope=event.scope,
            method=act.method,
            consented_at=stamp,
            historical_import=act.historical_import,
            evidence=act.evidence,
            state=state,
            occurred_at=now,
        )
        for event in outcome.events
    ]


def consent_state(state: ProfileConsent) -> ConsentState:
    view = state.view()
    return ConsentState(
        **{k: ChannelState(**view[k]) for k in CHANNEL_SLOTS},
        lists=view["lists"],
        opt_outs=view["opt_outs"],
    )


def _merge(profile: dict[str, Any], incoming: dict[str, Any] | None, profile_id: str) -> dict:
    merged = {**profile, "id": profile_id}
    for k, v in (incoming or {}).items():
        if v not in (None, {}, ""):
            merged[k] = v
    if merged.get("phone_number"):
        merged["phone_number"] = normalize_phone(merged["phone_number"])
    return merged


def _short(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


async def apply_acts(
    uow: UnitOfWork,
    requests: Sequence[Request],
    settings: Settings,
    now: datetime | None = None,
) -> list[Outcome]:
    """Apply `requests` in order on one transaction; returns each one's outcome (a
    rejection is the caller's to report). State, history, events and confirmation mails
    are written together, set-based."""
    if not requests:
        return []
    now = now or utcnow()
    conn = uow.conn
    stored = await repo.lock_states(conn, (r.key for r in requests))
    prefs = await repo.account_settings(conn, (r.account_id for r in requests))
    sups = await repo.suppressions(conn, (r.key for r in requests))
    outcomes: list[Outcome] = []
    history: list[tuple[str, str, Any]] = []
    confirmations: list[tuple] = []
    mails_out: list[tuple[str, Any, str, str]] = []
    touched: set[repo.Key] = set()
    for req in requests:
        row = stored[req.key]
        acct = prefs.get(req.account_id, repo.AccountSettings())
        doi = acct.email_double_opt_in
        policy = Policy(
            email_double_opt_in=settings.email_double_opt_in if doi is None else doi,
            manually_suppressed=any(
                s.get("reason") == "manual"
                and s.get("list_id") is None
                and s.get("channel", "email") == "email"
                for s in sups.get(req.key, [])
            ),
        )
        profile = _merge(row.profile, req.profile, req.profile_id)
        outcome = decide(row.state, req.act, policy, now)
        if outcome.confirmation is not None and not profile.get("email"):
            outcome = Outcome(row.state, rejection="C8: an email subscribe needs profile.email")
        outcomes.append(outcome)
        if outcome.rejection is not None:
            continue
        row.state, row.profile = outcome.state, profile
        touched.add(req.key)
        history += [(req.account_id, req.profile_id, h) for h in outcome.history]
        if outcome.confirmation is not None:
            c = outcome.confirmation
            cid = _short(req.account_id, req.profile_id, req.act.act_id)
            confirmations.append(
                (
                    cid,
                    req.account_id,
                    req.profile_id,
                    c.channel,
                    c.list_id,
                    c.scope,
                    req.act.method,
                    profile["email"],
                )
            )
            msg = mails.confirmation(
                settings,
                confirmation_id=cid,
                account_id=req.account_id,
                profile_id=req.profile_id,
                email=profile["email"],
                list_id=c.list_id,
                scope=c.scope,
                mail_from=acct.from_email or mails.DEFAULT_FROM,
            )
            mails_out.append((cid, msg, req.account_id, acct.from_email or mails.DEFAULT_FROM))
        for change in change_messages(
            req.account_id, req.profile_id, profile, req.act, outcome, now
        ):
            uow.publish(topics.CONSENT_CHANGES, req.profile_id, change)
    await repo.save_states(conn, {k: stored[k] for k in touched})
    await repo.append_history(conn, history)
    fresh = await repo.add_confirmations(conn, confirmations)
    await mail_queue.enqueue_many(
        conn,
        [
            mail_queue.OutgoingMail(
                dedupe_key=f"consent-confirm:{cid}",
                kind="consent-confirmation",
                account_id=account_id,
                message=msg,
                mail_from=mail_from,
                rcpt_to=msg["To"],
            )
            for cid, msg, account_id, mail_from in mails_out
            if cid in fresh
        ],
    )
    return outcomes


async def on_commands(
    uow: UnitOfWork, items: list[Received[ConsentCommand]], settings: Settings
) -> None:
    """`consent-commands`: C1–C11; a rule violation is dead-lettered with its reason."""
    requests = [
        Request(
            i.message.account_id,
            i.message.profile.id,
            act_from_command(i.message),
            i.message.profile.model_dump(),
        )
        for i in items
    ]
    outcomes = await apply_acts(uow, requests, settings)
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome.rejection is not None:
            dead_letter(uow, COMMANDS, item.record, outcome.rejection)


async def on_sms_inbound(
    uow: UnitOfWork, items: list[Received[SmsInbound]], settings: Settings
) -> None:
    """C13: keywords change SMS consent of every profile on that number, and get a reply."""
    texts = [(i.message, keyword(i.message.body)) for i in items]
    texts = [(m, k) for m, k in texts if k is not None]
    if not texts:
        return
    phones = await repo.profiles_by_phone(
        uow.conn, ((m.account_id, normalize_phone(m.phone_number) or "") for m, _ in texts)
    )
    requests = []
    for msg, word in texts:
        if word == "help":
            continue
        phone = normalize_phone(msg.phone_number)
        for profile_id in phones.get((msg.account_id, phone or ""), []):
            requests.append(
                Request(
                    msg.account_id,
                    profile_id,
                    Act(
                        act_id=f"sms:{msg.message_id}",
                        action="unsubscribe" if word == "stop" else "subscribe",
                        channel="sms",
                        act_at=clamp(
                            msg.received_at
                            if msg.received_at.tzinfo
                            else msg.received_at.replace(tzinfo=UTC)
                        ),
                        method="keyword",
                        phone_number=phone,
                    ),
                )
            )
    await apply_acts(uow, requests, settings)
    prefs = await repo.account_settings(uow.conn, (m.account_id for m, _ in texts))
    for msg, word in texts:
        acct = prefs.get(msg.account_id, repo.AccountSettings())
        body = getattr(acct, f"sms_reply_{word}") or DEFAULT_REPLIES[word]
        uow.publish(
            topics.SMS_OUTBOUND,
            msg.phone_number,
            SmsOutbound(
                reply_id=f"{msg.account_id}:{msg.message_id}:reply",
                account_id=msg.account_id,
                phone_number=msg.phone_number,
                body=body,
                in_reply_to=msg.message_id,
            ),
        )


async def on_suppression_changes(
    uow: UnitOfWork, items: list[Received[SuppressionChanged]], settings: Settings
) -> None:
    """Keep the suppression read model (C14); S3: a spam complaint unsubscribes email."""
    changes = [i.message for i in items]
    await repo.save_suppressions(
        uow.conn,
        [(c.account_id, c.profile_id, c.suppressions, c.occurred_at) for c in changes],
    )
    await repo.remember_profiles(
        uow.conn,
        [
            (c.account_id, c.profile_id, c.profile.model_dump(exclude={"properties"}))
            for c in changes
        ],
    )
    requests = [
        Request(
            c.account_id,
            c.profile_id,
            Act(
                act_id=f"spam:{c.change_id}",
                action="unsubscribe",
                channel="email",
                act_at=clamp(c.occurred_at),
                method="spam_complaint",
            ),
            c.profile.model_dump(),
        )
        for c in changes
        if c.type == "suppressed" and c.reason == "spam_complaint" and c.channel == "email"
    ]
    await apply_acts(uow, requests, settings)
