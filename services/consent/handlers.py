"""The consent service's use cases, over its one port, the unit of work (`ConsentWork`
in `ports.py`): apply consent acts from commands, SMS keywords, links and spam
complaints; publish C9 events; queue confirmation emails; answer privacy requests.
Every consumer's use case is `async def on_<topic>(batch, work)`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from services.consent.domain.keywords import DEFAULT_REPLIES, NOT_APPLIED, keyword, reply_kind
from services.consent.domain.model import (
    CHANNEL_SLOTS,
    Act,
    HistoryEntry,
    Outcome,
    Policy,
    ProfileConsent,
    clamp,
    normalize_phone,
    plain_zone,
    scope_name,
)
from services.consent.domain.receipts import Head, Personal, Receipt, applied, receipt
from services.consent.domain.records import quick_init
from services.consent.domain.rules import decide, invalid, reject
from services.consent.outputs import change_payloads, short_digest
from services.consent.ports import (
    AccountSettings,
    CommandRecord,
    Confirmation,
    ConsentWork,
    HistoryRow,
    IdentityAct,
    Key,
    KnownProfile,
    Stored,
    SuppressionList,
    identity_key,
)
from shared.contracts import (
    ConsentChanged,
    ConsentCommand,
    ConsentState,
    PrivacyRequest,
    PrivacyResult,
    SmsInbound,
    SmsOutbound,
    SuppressionChanged,
    topics,
    utcnow,
)
from shared.domain.identity import derived_id, email_identity
from shared.domain.profiles import merged_profile
from shared.metrics import DUPLICATES
from shared.pages.accounts import PageSettings
from shared.ports import OutgoingMail
from shared.privacy import profile_hash, subject_hash, subject_hashes
from shared.privacy_requests import handle
from shared.received import Received

COMMANDS = f"consent.{topics.CONSENT_COMMANDS}"
SMS = f"consent.{topics.SMS_INBOUND}"
SUPPRESSIONS = f"consent.{topics.SUPPRESSION_CHANGES}"
PRIVACY = f"consent.{topics.PRIVACY_REQUESTS}"
PRIVACY_PARTS = f"consent.{topics.PRIVACY_RESULTS}"
ERASED_HELD = "P2: the address was erased; a subscribe needs evidence of new consent"
HELD_BY = "erased_subjects"
"""The key, in a stored profile, of the erased subjects (keyed hashes) that held one of
its acts (P2); never part of what is published or shown."""


@quick_init
@dataclass(frozen=True, slots=True)
class Request:
    """An act for one profile, with the profile attributes that came with it."""

    account_id: str
    profile_id: str
    act: Act
    profile: dict[str, Any] | None = None
    # The trace headers of the input, where its Kafka key is not the profile id (an SMS
    # is keyed by phone number), so the consent changes it causes still carry them (X4).
    headers: Mapping[str, str] | None = None
    # C15: the evidence a double opt-in's pending subscribe carried, for the receipt of
    # its confirmation (the click itself is the profile's own act and needs none).
    receipt_evidence: str | None = None
    key: Key = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", Key(self.account_id, self.profile_id))


def act_from_command(cmd: ConsentCommand) -> Act:
    return Act(
        act_id=cmd.command_id,
        action=cmd.action,
        channel=cmd.channel,
        act_at=clamp(plain_zone(cmd.consented_at)),
        purpose=cmd.purpose,
        list_id=cmd.list_id,
        scope=scope_name(cmd.scope.level, cmd.scope.client_id, cmd.scope.user_id),
        method=cmd.method,
        evidence=cmd.evidence,
        historical_import=cmd.historical_import,
        phone_number=cmd.profile.phone_number,
        actor=cmd.actor,
        notice=cmd.notice,
        jurisdiction=cmd.jurisdiction,
    )


def act_from_record(cmd: CommandRecord) -> Act:
    """`act_from_command` of a command record (`adapters.commands`)."""
    scope = cmd["scope"]
    return Act(
        act_id=cmd["command_id"],
        action=cmd["action"],
        channel=cmd["channel"],
        act_at=clamp(plain_zone(cmd["consented_at"])),
        purpose=cmd["purpose"],
        list_id=cmd["list_id"],
        scope=scope_name(scope["level"], scope["client_id"], scope["user_id"]),
        method=cmd["method"],
        evidence=cmd["evidence"],
        historical_import=cmd["historical_import"],
        phone_number=cmd["profile"]["phone_number"],
        actor=cmd["actor"],
        notice=cmd["notice"],
        jurisdiction=cmd["jurisdiction"],
    )


def command_request(cmd: CommandRecord | ConsentCommand) -> Request:
    """The request of one command, a record (`adapters.commands`) or a `ConsentCommand`:
    the act, with the profile attributes it brings (a record's profile is already the
    dict the model would dump)."""
    if isinstance(cmd, ConsentCommand):
        return Request(
            cmd.account_id, cmd.profile.id, act_from_command(cmd), cmd.profile.model_dump()
        )
    profile = cmd["profile"]
    return Request(cmd["account_id"], profile["id"], act_from_record(cmd), profile)


def change_messages(
    account_id: str,
    profile_id: str,
    profile: dict[str, Any],
    act: Act,
    outcome: Outcome,
    now: datetime,
    receipt_id: str | None = None,
) -> list[ConsentChanged]:
    """The `consent-changes` messages of one decided act (C9), read back as models from
    the bytes the outbox publishes (`outputs.change_payloads`): what a consumer gets."""
    prefix = derived_id(account_id, profile_id, act.act_id)
    return [
        ConsentChanged.model_validate_json(payload)
        for payload in change_payloads(
            prefix, account_id, profile_id, profile, act, outcome, now, receipt_id
        )
    ]


def consent_state(state: ProfileConsent) -> ConsentState:
    """The full state a consent change carries (C9)."""
    return ConsentState.model_validate(state.view())


def _merge(profile: dict[str, Any], incoming: dict[str, Any] | None, profile_id: str) -> dict:
    """The profile with what the command carries; its phone number normalised (C6)."""
    merged = merged_profile(profile, incoming, profile_id)
    if merged.get("phone_number"):
        merged["phone_number"] = normalize_phone(merged["phone_number"])
    return merged


@dataclass
class _Loaded:
    """What a batch of acts reads once, before deciding each act."""

    stored: dict[Key, Stored]
    prefs: dict[str, AccountSettings]
    sups: dict[Key, list[dict[str, Any]]]
    erased: dict[int, list[str]]
    pages: dict[str, PageSettings]
    heads: dict[Key, Head] = field(default_factory=dict)  # C16: each chain's end so far
    # Each subscribe's profile with what it brings (`_merge`), by request, as `_erased`
    # made it from the stored profile: `_apply_one` takes it when the profile is still
    # that one (no act before it in the batch changed it).
    merged: dict[int, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _Writes:
    """What a batch of acts writes once, after deciding each act."""

    history: list[HistoryRow] = field(default_factory=list)
    confirmations: list[Confirmation] = field(default_factory=list)
    mails: dict[str, OutgoingMail] = field(default_factory=dict)  # by confirmation id
    touched: set[Key] = field(default_factory=set)
    receipts: list[Receipt] = field(default_factory=list)


async def apply_acts(
    work: ConsentWork, requests: Sequence[Request], now: datetime | None = None
) -> list[Outcome]:
    """Apply `requests` in order on one transaction; returns each one's outcome (a
    rejection is the caller's to report). State, history, events and confirmation mails
    are written together, set-based. An opt-out also reaches every other profile that
    carries its address or number (I1, C6: see `apply_with_identities`)."""
    done = await apply_with_identities(work, requests, (), now)
    return [out for req, out, original in done if original]


async def apply_with_identities(
    work: ConsentWork,
    requests: Sequence[Request],
    kept: Sequence[IdentityAct],
    now: datetime | None = None,
    once: bool = False,
) -> list[tuple[Request, Outcome, bool]]:
    """Apply `requests` and acts of an address or number itself (`kept`: keywords), on
    one transaction. I1, C6: an opt-out holds for the address or number it was made for,
    for every profile that carries it now or later. So each such act (every act in
    `kept`, and each opt-out among `requests`) is kept in the identity ledger and applied
    to every profile that carries the identity now, and every act of a profile first
    folds in the ledger of the identities the profile carries. Returns every applied
    (request, outcome, whether it was one of `requests`), in order.

    With `once`, a request whose act id the audit trail already holds is left out (X2:
    a redelivered command). Read under the locks, so a concurrent copy is seen."""
    if not requests and not kept:
        return []
    # Identities first (what the acts themselves name), then profiles: every batch
    # takes its locks in that order.
    named = {id(r): _identities(r, {}) for r in requests}
    locked = {(k.account_id, k.identity) for k in kept} | {
        (r.account_id, key) for r in requests for key in named[id(r)]
    }
    await work.identities.lock_identities(locked)
    stored = await work.states.lock_states(r.key for r in requests)
    if once and requests:
        done = await work.states.recorded_acts((r.account_id, r.act.act_id) for r in requests)
        requests = [r for r in requests if (r.account_id, r.act.act_id) not in done]
    widened = await _widen(work, requests, kept, stored, locked, named)
    extra = {r.key for r, _ in widened} - set(stored)
    if extra:
        stored |= await work.states.lock_states(extra)
    every = [r for r, _ in widened]
    # Stamped after the rows are locked: a profile's events then carry `occurred_at` in
    # commit order, which read models keeping "the newest state" rely on (F7).
    now = now or utcnow()
    merged: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    loaded = _Loaded(
        stored,
        await work.accounts.account_settings(r.account_id for r in every),
        await work.suppressions.suppressions(r.key for r in every),
        await _erased(work, every, stored, merged),
        await work.accounts.page_settings(r.account_id for r in every),
        await work.receipts.receipt_heads({r.key for r in every}),
        merged=merged,
    )
    writes = _Writes()
    applied = [
        (req, await _apply_one(work, req, loaded, writes, now), original)
        for req, original in widened
    ]
    # The receipts first: each chain's new end is saved with its profile's state (C16).
    await work.receipts.append_receipts(writes.receipts)
    await work.states.save_states({k: stored[k] for k in writes.touched})
    await work.states.append_history(writes.history)
    fresh = await work.confirmations.add_confirmations(writes.confirmations)
    await work.queue_mail([m for cid, m in writes.mails.items() if cid in fresh])
    return applied


def _number_of(req: Request, stored: Mapping[Key, Stored]) -> str | None:
    """The number an act is about (C6): the one it carries, else the number the
    profile's SMS consent belongs to."""
    if req.act.phone_number:
        return normalize_phone(req.act.phone_number)
    return stored[req.key].state.phone_number if req.key in stored else None


def _address_of(req: Request, stored: Mapping[Key, Stored]) -> str | None:
    """The profile's email address in its I1 normal form, with what the act brings."""
    known = stored[req.key].profile if req.key in stored else {}
    return email_identity((req.profile or {}).get("email") or known.get("email"))


def _identities(req: Request, stored: Mapping[Key, Stored]) -> list[str]:
    """The ledger keys of what the profile of an act carries (I1, C6)."""
    number, address = _number_of(req, stored), _address_of(req, stored)
    return [
        *([identity_key("phone", number)] if number else []),
        *([identity_key("email", address)] if address else []),
    ]


def _carried(
    req: Request, stored: Mapping[Key, Stored], named: Mapping[int, list[str]]
) -> list[str]:
    """`_identities(req, stored)`, taken from `named` (each request's `_identities(req,
    {})`, what the act itself names) when the stored row adds nothing to it: a number
    only when the act brings none, an address only when the request brings none (a new
    profile: every subscribe of a new person)."""
    row = stored.get(req.key)
    if row is None or (
        (req.act.phone_number or row.state.phone_number is None)
        and ((req.profile or {}).get("email") or not row.profile.get("email"))
    ):
        return named[id(req)]
    return _identities(req, stored)


def _kept_for(req: Request, stored: Mapping[Key, Stored]) -> list[IdentityAct]:
    """What an opt-out leaves in the ledger (I1, C6): an SMS opt-out for its number, as
    the number's act; an email opt-out for the address, without the profile's number."""
    act = req.act
    if act.action != "unsubscribe" or invalid(act) is not None:
        return []
    if act.channel == "sms" and (number := _number_of(req, stored)):
        kept = replace(act, number_only=True, phone_number=number)
        return [IdentityAct(req.account_id, identity_key("phone", number), kept, req.headers)]
    if act.channel == "email" and (address := _address_of(req, stored)):
        kept = replace(act, phone_number=None)
        return [IdentityAct(req.account_id, identity_key("email", address), kept, req.headers)]
    return []


async def _widen(
    work: ConsentWork,
    requests: Sequence[Request],
    kept: Sequence[IdentityAct],
    stored: Mapping[Key, Stored],
    locked: set[tuple[str, str]],
    named: Mapping[int, list[str]],
) -> list[tuple[Request, bool]]:
    """The requests with what I1 and C6 add: before each act, the ledger of what its
    profile carries (acts the profile already has are skipped by `decide`, X2); after
    them, each new ledger act for every profile that carries its identity now. The new
    ledger acts are kept. `named`: each request's `_identities(req, {})`."""
    about = [_carried(r, stored, named) for r in requests]
    # What only the stored profiles name (their number or address) is locked now.
    await work.identities.lock_identities(
        {(r.account_id, key) for r, keys in zip(requests, about, strict=True) for key in keys}
        - locked
    )
    new = [*kept, *(k for r in requests for k in _kept_for(r, stored))]
    await work.identities.add_identity_acts(new)
    ledger = await work.identities.identity_acts(
        {(r.account_id, key) for r, keys in zip(requests, about, strict=True) for key in keys}
    )
    for k in new:  # acts of this batch, in the order they came
        acts = ledger.setdefault((k.account_id, k.identity), [])
        if all(a.act_id != k.act.act_id for a in acts):
            acts.append(k.act)
    carriers = await work.identities.profiles_by_identity({(k.account_id, k.identity) for k in new})
    out: list[tuple[Request, bool]] = []
    for req, keys in zip(requests, about, strict=True):
        folded = {
            a.act_id: a
            for key in keys
            for a in ledger.get((req.account_id, key), [])
            if a.act_id != req.act.act_id
        }
        for act in sorted(folded.values(), key=lambda a: a.version):
            # With the attributes the request brings: the changes it publishes carry
            # the profile's address and number (F7: the executor reads them there).
            out.append((Request(req.account_id, req.profile_id, act, req.profile), False))
        out.append((req, True))
    for k in new:
        for profile_id in carriers.get((k.account_id, k.identity), []):
            out.append((Request(k.account_id, profile_id, k.act, headers=k.headers), False))
    return out


NO_SETTINGS = AccountSettings()
"""An account without settings of its own (frozen: one serves every act)."""
NO_HEAD = Head()
"""The head of a chain without receipts yet (C16)."""
_POLICIES = {
    (doi, manual, spam): Policy(doi, manual, spam)
    for doi in (False, True)
    for manual in (False, True)
    for spam in (False, True)
}
"""Every `Policy` there is (three flags), made once: every act is decided under one."""


def _policy(double_opt_in: bool, acct: AccountSettings, sups: list[dict[str, Any]]) -> Policy:
    """The account's double opt-in choice and the global email suppressions in force."""
    doi = acct.email_double_opt_in
    if not sups:
        return _POLICIES[bool(double_opt_in if doi is None else doi), False, False]
    global_email = {
        s.get("reason")
        for s in sups
        if s.get("list_id") is None and s.get("channel", "email") == "email"
    }
    return _POLICIES[
        bool(double_opt_in if doi is None else doi),
        "manual" in global_email,
        "spam_complaint" in global_email,
    ]


async def _apply_one(
    work: ConsentWork, req: Request, loaded: _Loaded, writes: _Writes, now: datetime
) -> Outcome:
    """Decide one act on the state left by the acts before it in the batch."""
    row = loaded.stored[req.key]
    acct = loaded.prefs.get(req.account_id, NO_SETTINGS)
    base, profile = loaded.merged.get(id(req)) or (None, None)
    if base is not row.profile or profile is None:
        profile = _merge(row.profile, req.profile, req.profile_id)
    held = loaded.erased.get(id(req), [])
    if held and req.act.action != "unsubscribe":
        if not req.act.has_evidence:
            # P2: an erased address is not messaged again on an import or form
            # alone; the act is kept in the audit trail, without the address. The
            # profile remembers which erased subjects hold it (hashes, no address), so
            # its read side shows it held (C14) until new consent lifts them.
            entry = _held(req.act, row.state)
            writes.history.append(HistoryRow(req.account_id, req.profile_id, entry))
            holding = sorted({*row.profile.get(HELD_BY, ()), *held})
            row.profile = {**row.profile, "id": req.profile_id, HELD_BY: holding}
            writes.touched.add(req.key)
            return Outcome(row.state, history=(entry,))
        await work.erasures.lift_erasure([(req.account_id, h) for h in held])
    options = work.options
    policy = _policy(options.email_double_opt_in, acct, loaded.sups.get(req.key, []))
    outcome = decide(row.state, req.act, policy, now)
    if outcome.confirmation is not None and not profile.get("email"):
        outcome = reject(row.state, req.act, "C8: an email subscribe needs profile.email")
    # A rejected or stale act is kept too (log and history, C11, X3): no event, no mail.
    row.state = outcome.state
    writes.touched.add(req.key)
    # X2: the ids of what the act makes (receipt, changes) all start with this.
    prefix = derived_id(req.account_id, req.profile_id, req.act.act_id)
    made = _receipt(req, outcome, profile, loaded, writes, options.hash_secret, now, prefix)
    rid = made.receipt_id if made else None
    writes.history += [
        HistoryRow(req.account_id, req.profile_id, h, rid if h.result == "applied" else None)
        for h in outcome.history
    ]
    if outcome.rejection is not None:
        # I1, C6: the service now knows the profile carries this address and number, so
        # a later opt-out of either (or the number's START) reaches it; its consent is
        # left as it was.
        carried = {k: profile[k] for k in ("email", "phone_number") if profile.get(k)}
        row.profile = {**row.profile, "id": req.profile_id, **carried}
        return outcome
    row.profile = profile
    if outcome.confirmation is not None:
        _ask_confirmation(work, req, outcome, profile["email"], acct, loaded, writes)
    for payload in change_payloads(
        prefix, req.account_id, req.profile_id, profile, req.act, outcome, now, rid
    ):
        work.publish(topics.CONSENT_CHANGES, req.profile_id, payload, headers=req.headers)
    return outcome


def _receipt(
    req: Request,
    outcome: Outcome,
    profile: Mapping[str, Any],
    loaded: _Loaded,
    writes: _Writes,
    secret: str,
    now: datetime,
    prefix: str,
) -> Receipt | None:
    """C15, C16: the receipt of an applied act for this profile (none for a stale,
    rejected, held or pending act: their history rows say what happened), the next link
    of the profile's chain."""
    entries = applied(outcome.history)
    if not entries or outcome.rejection is not None:
        return None
    pages = loaded.pages.get(req.account_id)
    made = receipt(
        account_id=req.account_id,
        account_name=(pages.display_name if pages else None) or req.account_id,
        profile_id=req.profile_id,
        act=req.act,
        entries=entries,
        personal=Personal(
            email=profile.get("email"),
            phone_number=outcome.state.phone_number or profile.get("phone_number"),
            evidence=req.act.evidence or req.receipt_evidence,
        ),
        head=loaded.heads.get(req.key, NO_HEAD),
        recorded_at=now,
        keyed=lambda kind, value: subject_hash(secret, kind, value),
        receipt_id=f"{prefix}:receipt",
    )
    loaded.heads[req.key] = Head(made.sequence, made.hash)
    writes.receipts.append(made)
    return made


def _ask_confirmation(
    work: ConsentWork,
    req: Request,
    outcome: Outcome,
    email: str,
    acct: AccountSettings,
    loaded: _Loaded,
    writes: _Writes,
) -> None:
    """C8: a pending confirmation and its mail (queued only if the confirmation is new)."""
    c = outcome.confirmation
    assert c is not None
    cid = short_digest(req.account_id, req.profile_id, req.act.act_id)
    pending = Confirmation(
        cid, req.account_id, req.profile_id, c.channel, c.list_id, c.scope,
        req.act.method, email, evidence=req.act.evidence, notice=req.act.notice,
        jurisdiction=req.act.jurisdiction,
    )  # fmt: skip
    writes.confirmations.append(pending)
    writes.mails[cid] = work.mails.confirmation(pending, acct, loaded.pages.get(req.account_id))


async def _erased(
    work: ConsentWork,
    requests: Sequence[Request],
    stored: dict[Key, Stored],
    merged_out: dict[int, tuple[dict[str, Any], dict[str, Any]]],
) -> dict[int, list[str]]:
    """The erased-address hashes each subscribe request matches (P2), by request; the
    profiles merged for it are kept in `merged_out` (by request, with the profile merged
    into)."""
    secret = work.options.hash_secret
    wanted: dict[int, list[str]] = {}
    for req in requests:
        if req.act.action == "unsubscribe":
            continue
        base = stored[req.key].profile
        merged = _merge(base, req.profile, req.profile_id)
        merged_out[id(req)] = (base, merged)
        # P2: held by any spelling of the erased address or number (I1), and by the
        # erased profile id itself.
        wanted[id(req)] = [
            *subject_hashes(
                secret, merged.get("email"), req.act.phone_number or merged.get("phone_number")
            ),
            profile_hash(secret, req.profile_id),
        ]
    if not wanted:
        return {}
    pairs = [(r.account_id, h) for r in requests for h in wanted.get(id(r), [])]
    found = await work.erasures.erased_hashes(pairs)
    out = {}
    for req in requests:
        hit = [h for h in wanted.get(id(req), []) if (req.account_id, h) in found]
        if hit:
            out[id(req)] = hit
    return out


def _held(act: Act, state: ProfileConsent) -> HistoryEntry:
    slot = f"sms_{act.purpose}" if act.channel == "sms" else act.channel
    return HistoryEntry(
        slot=slot,
        action=act.action,
        result="held_erased",
        status=state.status(slot) if slot in CHANNEL_SLOTS else "never_subscribed",
        consented_at=None,
        act_at=act.act_at,
        method=act.method,
        act_id=act.act_id,
        list_id=act.list_id,
        scope=act.scope,
    )


async def on_privacy_requests(batch: list[Received[PrivacyRequest]], work: ConsentWork) -> None:
    """P1: remember the request (its status is read here) and do the consent part."""
    await work.privacy_requests.record_requests([i.message for i in batch])
    await handle(batch, work)


async def on_privacy_results(batch: list[Received[PrivacyResult]], work: ConsentWork) -> None:
    """P1: collect every service's part; the request is done when all four are in."""
    await work.privacy_requests.record_parts([i.message for i in batch])


async def renew_confirmation(work: ConsentWork, confirmation_id: str, now: datetime) -> bool:
    """C12: an expired confirmation link asks for a new mail. A fresh pending
    confirmation (same account, profile, list and scope) is recorded and its mail queued;
    at most one per old link per day, so a link pressed repeatedly sends one mail.
    False when the old confirmation was already used or is unknown."""
    old = await work.confirmations.confirmation(confirmation_id)
    if old is None or old.confirmed_at is not None:
        return False
    fresh_id = short_digest(confirmation_id, "renewed", now.date().isoformat())
    renewed = replace(old, confirmation_id=fresh_id, requested_at=None, confirmed_at=None)
    if fresh_id not in await work.confirmations.add_confirmations([renewed]):
        return True  # already renewed today: that mail is on its way
    account = old.account_id
    acct = (await work.accounts.account_settings([account])).get(account, AccountSettings())
    pages = (await work.accounts.page_settings([account])).get(account, PageSettings())
    await work.queue_mail([work.mails.confirmation(renewed, acct, pages)])
    return True


async def queue_opt_out_confirmation(
    work: ConsentWork, account_id: str, profile_id: str, act_id: str
) -> None:
    """W3: when the account asks for it, confirm an opt-out the profile made through a
    link by mail, with a way back in (the preference centre)."""
    pages = (await work.accounts.page_settings([account_id])).get(account_id, PageSettings())
    if not pages.optout_confirmation_email:
        return
    key = Key(account_id, profile_id)
    email = await work.states.profile_email(key)
    if not email:
        return
    acct = (await work.accounts.account_settings([account_id])).get(account_id, AccountSettings())
    await work.queue_mail([work.mails.opt_out(key, email, act_id, acct, pages)])


async def on_commands(
    batch: list[Received[CommandRecord | ConsentCommand]], work: ConsentWork
) -> None:
    """`consent-commands`: C1–C11; a rule violation is dead-lettered with its reason.
    Commands come as records (`adapters.commands`) or `ConsentCommand` objects.

    X2 without an inbox: a command is applied once per account and command id. A second
    copy in the batch is dropped here; a copy of a command applied before is found in
    the audit trail (`once`) or in the profile's act log (`decide`)."""
    first: dict[tuple[str, str], Request] = {}
    records = {}
    for item in batch:
        req = command_request(item.message)
        if first.setdefault((req.account_id, req.act.act_id), req) is req:
            records[id(req)] = item.record
    if len(first) < len(batch):
        DUPLICATES.labels(COMMANDS).inc(len(batch) - len(first))
    done = await apply_with_identities(work, list(first.values()), (), once=True)
    for req, outcome, original in done:
        if original and outcome.rejection is not None:
            work.dead_letter(COMMANDS, records[id(req)], outcome.rejection)


async def on_sms_inbound(batch: list[Received[SmsInbound]], work: ConsentWork) -> None:
    """C13: keywords change SMS consent of every profile on that number, now or later
    (C6: the number keeps them), and get a reply that tells the truth about the state
    after it (X3: a stale keyword is not confirmed)."""
    texts = [(i.message, keyword(i.message.body)) for i in batch]
    texts = [(m, k) for m, k in texts if k is not None]
    if not texts:
        return
    traces = {i.message.message_id: i.trace.headers() for i in batch}
    kept = [
        IdentityAct(
            msg.account_id,
            identity_key("phone", number),
            keyword_act(msg, word),
            headers=traces[msg.message_id],
        )
        for msg, word in texts
        if word != "help" and (number := normalize_phone(msg.phone_number))
    ]
    done = await apply_with_identities(work, (), kept)
    after: dict[str, list[ProfileConsent]] = {}
    for req, outcome, _ in done:
        after.setdefault(req.act.act_id, []).append(outcome.state)
    prefs = await work.accounts.account_settings(m.account_id for m, _ in texts)
    for msg, word in texts:
        acct = prefs.get(msg.account_id, AccountSettings())
        kind = reply_kind(word, after.get(f"sms:{msg.message_id}", []))
        if kind in NOT_APPLIED:
            body = NOT_APPLIED[kind]
        else:
            body = getattr(acct, f"sms_reply_{kind}") or DEFAULT_REPLIES[kind]  # type: ignore[index]
        work.publish(
            topics.SMS_OUTBOUND,
            msg.phone_number,
            SmsOutbound(
                reply_id=derived_id(msg.account_id, msg.message_id, "reply"),
                account_id=msg.account_id,
                phone_number=msg.phone_number,
                body=body,
                in_reply_to=msg.message_id,
            ),
        )


def keyword_act(msg: SmsInbound, word: str) -> Act:
    """C13: STOP unsubscribes the number's SMS consent, START subscribes it again."""
    return Act(
        act_id=f"sms:{msg.message_id}",
        action="unsubscribe" if word == "stop" else "subscribe",
        channel="sms",
        act_at=clamp(
            msg.received_at if msg.received_at.tzinfo else msg.received_at.replace(tzinfo=UTC)
        ),
        method="keyword",
        phone_number=normalize_phone(msg.phone_number),
        # START comes from the number itself: the profile's own act (C11).
        confirmed=word == "start",
        number_only=True,  # C6: the number's act, whoever carries it now or later
        actor="profile (sms keyword)",
    )


async def on_suppression_changes(
    batch: list[Received[SuppressionChanged]], work: ConsentWork
) -> None:
    """Keep the suppression read model (C14); S3: a spam complaint unsubscribes email."""
    changes = [i.message for i in batch]
    await work.suppressions.save_suppressions(
        [
            SuppressionList(c.account_id, c.profile_id, c.suppressions, c.occurred_at)
            for c in changes
        ]
    )
    await work.states.remember_profiles(
        [
            KnownProfile(c.account_id, c.profile_id, c.profile.model_dump(exclude={"properties"}))
            for c in changes
        ]
    )
    requests = [
        Request(
            c.account_id,
            c.profile_id,
            spam_act(c.change_id, c.reported_at or c.occurred_at, c.list_id),
            c.profile.model_dump(),
        )
        for c in changes
        if c.type == "suppressed" and c.reason == "spam_complaint" and c.channel == "email"
    ]
    await apply_acts(work, requests)


def spam_act(change_id: str, occurred_at: datetime, list_id: str | None) -> Act:
    """S3: a spam complaint is an email opt-out ordered by when the person complained
    (the complaint's `occurred_at`); a list-specific complaint opts out of that list."""
    return Act(
        act_id=f"spam:{change_id}",
        action="unsubscribe",
        channel="email",
        act_at=clamp(occurred_at),
        list_id=list_id,
        method="spam_complaint",
        actor="suppression (spam complaint)",
    )


async def refuse_operator_act(
    work: ConsentWork, cmd: ConsentCommand, state: ProfileConsent
) -> str | None:
    """C11, X3a: why an operator's act would be rejected, checked before it is queued so
    the API can answer 422; the rejection is kept in history and nothing is queued.
    None when the act may go to the command topic."""
    outcome = decide(state, act_from_command(cmd), Policy(), utcnow())
    if outcome.rejection is None:
        return None
    await work.states.append_history(
        [HistoryRow(cmd.account_id, cmd.profile.id, h) for h in outcome.history]
    )
    return outcome.rejection
