"""In-memory stand-ins for the consent service's port (`services/consent/ports.py`), so
its use cases run without PostgreSQL: `FakeWork` is `ConsentWork` bound to the in-memory
repository and outbox, as `services/consent/bootstrap.py` binds the real adapters.
`tests/component/consent/test_repository_contract.py` runs the same checks against the
in-memory repository and the PostgreSQL one."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from services.consent.adapters.mails import ConsentMailer
from services.consent.domain.model import Act, ProfileConsent
from services.consent.domain.receipts import Head, HistoryLink, Receipt
from services.consent.ports import (
    SETTING_FIELDS,
    AccountSettings,
    Chain,
    Confirmation,
    ConsentOptions,
    HistoryRow,
    IdentityAct,
    Key,
    KnownProfile,
    Stored,
    SuppressionList,
)
from shared.contracts import ConsentChanged, PrivacyRequest, PrivacyResult, topics
from shared.domain.identity import email_identity
from shared.messaging.batches import dead_letter
from shared.pages import accounts as page_accounts
from shared.pages.accounts import PageSettings
from shared.ports import OutgoingMail
from shared.privacy import hash_secret
from shared.settings import Settings


@dataclass
class _Row:
    state: ProfileConsent
    profile: dict[str, Any]
    email: str | None = None
    phone_number: str | None = None


@dataclass
class InMemoryConsentRepository:
    """`ConsentRepository` on dictionaries; copies in and out, as a database would."""

    rows: dict[Key, _Row] = field(default_factory=dict)
    history: list[HistoryRow] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    suppression_lists: dict[Key, SuppressionList] = field(default_factory=dict)
    confirmations: dict[str, Confirmation] = field(default_factory=dict)
    erased: set[tuple[str, str]] = field(default_factory=set)
    mails: dict[str, Any] = field(default_factory=dict)
    ledger: dict[tuple[str, str], dict[str, Act]] = field(default_factory=dict)
    locked_identities: set[tuple[str, str]] = field(default_factory=set)
    receipts: list[Receipt] = field(default_factory=list)  # in the order appended
    heads: dict[Key, Head] = field(default_factory=dict)

    async def lock_states(self, keys: Iterable[Key]) -> dict[Key, Stored]:
        out = {}
        for key in sorted(set(keys)):
            row = self.rows.setdefault(Key(*key), _Row(ProfileConsent.from_json(None), {}))
            out[Key(*key)] = Stored(row.state, copy.deepcopy(row.profile))
        return out

    async def save_states(self, states: Mapping[Key, Stored]) -> None:
        for key, stored in states.items():
            row = self.rows[key]
            row.state, row.profile = stored.state, copy.deepcopy(stored.profile)
            row.email = stored.profile.get("email")
            row.phone_number = stored.state.phone_number

    async def append_history(self, rows: Sequence[HistoryRow]) -> None:
        self.history += rows

    async def recorded_acts(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        held = {(h.account_id, h.entry.act_id) for h in self.history}
        return {(a, i) for a, i in pairs if (a, i) in held}

    async def account_settings(self, accounts: Iterable[str]) -> dict[str, AccountSettings]:
        return {a: AccountSettings(**self.settings[a]) for a in set(accounts) if a in self.settings}

    async def save_account_settings(self, account_id: str, values: Mapping[str, Any]) -> None:
        cols = {k: v for k, v in values.items() if k in SETTING_FIELDS}
        if cols:
            self.settings.setdefault(account_id, {}).update(cols)

    async def page_settings(self, accounts: Iterable[str]) -> dict[str, PageSettings]:
        return {
            a: page_accounts.from_columns({f: self.pages[a].get(f) for f in page_accounts.FIELDS})
            for a in set(accounts)
            if a in self.pages
        }

    async def save_page_settings(self, account_id: str, values: Mapping[str, Any]) -> None:
        cols = {k: v for k, v in values.items() if k in page_accounts.FIELDS}
        if cols:
            self.pages.setdefault(account_id, {}).update(copy.deepcopy(cols))

    async def suppressions(self, keys: Iterable[Key]) -> dict[Key, list[dict[str, Any]]]:
        return {
            Key(*k): copy.deepcopy(self.suppression_lists[Key(*k)].suppressions)
            for k in set(keys)
            if Key(*k) in self.suppression_lists
        }

    async def save_suppressions(self, lists: Sequence[SuppressionList]) -> None:
        for new in lists:
            key = Key(new.account_id, new.profile_id)
            old = self.suppression_lists.get(key)
            if old is None or old.changed_at <= new.changed_at:
                self.suppression_lists[key] = copy.deepcopy(new)

    async def remember_profiles(self, profiles: Sequence[KnownProfile]) -> None:
        for p in profiles:
            key = Key(p.account_id, p.profile_id)
            if key not in self.rows:
                self.rows[key] = _Row(
                    ProfileConsent.from_json(None), copy.deepcopy(p.profile), p.profile.get("email")
                )
                continue
            row = self.rows[key]
            row.profile = {**row.profile, **{k: v for k, v in p.profile.items() if v is not None}}
            row.email = p.profile.get("email") or row.email

    async def lock_identities(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.locked_identities.update(pairs)

    async def identity_acts(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Act]]:
        out: dict[tuple[str, str], list[Act]] = {}
        for account, identity in set(pairs):
            acts = self.ledger.get((account, identity), {})
            if acts:
                out[(account, identity)] = sorted(acts.values(), key=lambda a: a.version)
        return out

    async def add_identity_acts(self, rows: Sequence[IdentityAct]) -> None:
        for r in rows:
            self.ledger.setdefault((r.account_id, r.identity), {}).setdefault(r.act.act_id, r.act)

    async def profiles_by_identity(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[str]]:
        out: dict[tuple[str, str], list[str]] = {}
        for account, identity in set(pairs):
            kind, _, value = identity.partition(":")
            ids = sorted(
                k.profile_id
                for k, row in self.rows.items()
                if k.account_id == account
                and (
                    (row.phone_number or row.profile.get("phone_number")) == value
                    if kind == "phone"
                    else email_identity(row.email) == value
                )
            )
            if ids:
                out[(account, identity)] = ids
        return out

    async def profile_email(self, key: Key) -> str | None:
        row = self.rows.get(Key(*key))
        return row.email if row else None

    async def add_confirmations(self, confirmations: Sequence[Confirmation]) -> set[str]:
        fresh = set()
        for c in confirmations:
            if c.confirmation_id not in self.confirmations:
                stamped = replace(c, requested_at=datetime.now(UTC), confirmed_at=None)
                self.confirmations[c.confirmation_id] = stamped
                fresh.add(c.confirmation_id)
        return fresh

    async def confirmation(self, confirmation_id: str) -> Confirmation | None:
        return self.confirmations.get(confirmation_id)

    async def claim_confirmation(self, confirmation_id: str) -> bool:
        found = self.confirmations.get(confirmation_id)
        if found is None or found.confirmed_at is not None:
            return False
        self.confirmations[confirmation_id] = replace(found, confirmed_at=datetime.now(UTC))
        return True

    async def erased_hashes(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return {tuple(p) for p in pairs if tuple(p) in self.erased}  # type: ignore[misc]

    async def lift_erasure(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.erased -= {tuple(p) for p in pairs}  # type: ignore[misc]

    async def receipt_heads(self, keys: Iterable[Key]) -> dict[Key, Head]:
        return {Key(*k): self.heads[Key(*k)] for k in set(keys) if Key(*k) in self.heads}

    async def append_receipts(self, receipts: Sequence[Receipt]) -> None:
        for r in receipts:
            self.receipts.append(copy.deepcopy(r))
            self.heads[Key(r.account_id, r.profile_id)] = Head(r.sequence, r.hash)

    async def receipt_chain(self, key: Key) -> Chain:
        key = Key(*key)
        mine = [r for r in self.receipts if (r.account_id, r.profile_id) == key]
        return Chain(
            sorted((copy.deepcopy(r) for r in mine), key=lambda r: r.sequence),
            self.heads.get(key),
            [
                HistoryLink(h.receipt_id, h.entry.slot, h.entry.status, h.entry.act_id)
                for h in self.history
                if (h.account_id, h.profile_id) == key and h.receipt_id is not None
            ],
        )

    async def receipt_profiles(self, account_id: str) -> list[str]:
        return sorted(
            {r.profile_id for r in self.receipts if r.account_id == account_id}
            | {k.profile_id for k in self.heads if k.account_id == account_id}
        )


@dataclass
class FakeOutbox:
    """The unit of work's outbox: what was published, in order."""

    published: list[tuple[str, str | None, Any]] = field(default_factory=list)
    headers: list[tuple[str, str | None, Any]] = field(default_factory=list)

    def publish(self, topic: str, key: str | None, message: Any, headers: Any = None) -> None:
        if isinstance(message, bytes) and topic == topics.CONSENT_CHANGES:
            # Published as the JSON bytes of the message: kept as a consumer reads it.
            message = ConsentChanged.model_validate_json(message)
        self.published.append((topic, key, message))
        self.headers.append((topic, key, headers))

    def on(self, topic: str) -> list[Any]:
        return [m for t, _, m in self.published if t == topic]


@dataclass
class InMemoryPrivacyLedger:
    """`PrivacyLedger`: the requests and parts recorded, in order."""

    requests: list[PrivacyRequest] = field(default_factory=list)
    parts: list[PrivacyResult] = field(default_factory=list)

    async def record_requests(self, requests: Sequence[PrivacyRequest]) -> None:
        self.requests += requests

    async def record_parts(self, parts: Sequence[PrivacyResult]) -> None:
        self.parts += parts


class FakeWork:
    """`ConsentWork` over the fakes: every store is the in-memory repository, outputs
    and dead letters go to the fake outbox, queued mails to `repo.mails` (by dedupe key),
    mails are built as the service builds them. `privacy` is unset: the privacy SQL is
    tested against PostgreSQL."""

    privacy: Any = None

    def __init__(
        self,
        repo: InMemoryConsentRepository,
        outbox: FakeOutbox,
        settings: Settings,
        ledger: InMemoryPrivacyLedger | None = None,
    ) -> None:
        self.repo, self.outbox = repo, outbox
        self.states = self.identities = self.accounts = repo
        self.suppressions = self.confirmations = self.erasures = self.receipts = repo
        self.privacy_requests = ledger or InMemoryPrivacyLedger()
        self.mails = ConsentMailer(settings)
        self.options = ConsentOptions(hash_secret(settings), settings.email_double_opt_in)

    def publish(self, topic: str, key: str | None, message: Any, headers: Any = None) -> None:
        self.outbox.publish(topic, key, message, headers)

    def dead_letter(self, consumer: str, record: ConsumerRecord, error: str) -> None:
        # The service's own letter, published to the fake outbox.
        dead_letter(self, consumer, record, error)

    async def queue_mail(self, mails: Sequence[OutgoingMail]) -> dict[str, int]:
        queued = {}
        for mail in mails:
            if mail.dedupe_key not in self.repo.mails:
                self.repo.mails[mail.dedupe_key] = mail
                queued[mail.dedupe_key] = len(self.repo.mails)
        return queued


def bootstrap(
    settings: Settings,
    repo: InMemoryConsentRepository | None = None,
    outbox: FakeOutbox | None = None,
) -> Callable[[Any], FakeWork]:
    """The fakes bound as `services.consent.bootstrap.bootstrap` binds the real adapters:
    a work factory, here one work over the same in-memory state whatever the transaction."""
    work = FakeWork(repo or InMemoryConsentRepository(), outbox or FakeOutbox(), settings)
    return lambda _uow: work
