"""What the consent use cases (`handlers.py`) need from the outside world: one port,
`ConsentWork` (the unit of work), made of `typing.Protocol` stores split by concern, and
the small records that cross it.

`adapters/repository.py` implements every store (`ConsentRepository`) on PostgreSQL
inside a unit of work, `adapters/unit_of_work.py` the work; `tests/unit/consent/fakes.py`
implements both in memory. One contract test suite
(`tests/component/consent/test_repository_contract.py`) runs against both, so the fake
behaves as the database does. Every method works on a whole batch: the PostgreSQL
adapter answers each call with one statement, whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from services.consent.domain.model import Act, HistoryEntry, ProfileConsent
from services.consent.domain.receipts import Head, HistoryLink, Receipt
from services.consent.domain.records import quick_init
from shared.contracts import PrivacyRequest, PrivacyResult
from shared.pages.accounts import PageSettings
from shared.ports import MailOutbox, Outbox, OutgoingMail
from shared.privacy_requests import PrivacyStore


class Key(NamedTuple):
    """A profile of an account."""

    account_id: str
    profile_id: str


CommandRecord = dict[str, Any]
"""A validated `consent-commands` payload as a plain dict (`adapters.commands`): the
fields of `ConsentCommand`, with `profile` and `scope` the fields of `Profile` and
`Scope`, defaults filled; what `ConsentCommand.model_dump()` gives."""


@dataclass
class Stored:
    """A profile's consent row as loaded for a unit of work."""

    state: ProfileConsent
    profile: dict[str, Any]


@dataclass(frozen=True)
class AccountSettings:
    """Per-account double opt-in (C8), sender address and SMS replies (C13); None: the
    service's default."""

    email_double_opt_in: bool | None = None
    from_email: str | None = None
    sms_reply_stop: str | None = None
    sms_reply_start: str | None = None
    sms_reply_help: str | None = None


SETTING_FIELDS = (
    "email_double_opt_in",
    "from_email",
    "sms_reply_stop",
    "sms_reply_start",
    "sms_reply_help",
)


@quick_init
@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One audit-trail entry of a profile (C2)."""

    account_id: str
    profile_id: str
    entry: HistoryEntry
    receipt_id: str | None = None  # C16: the receipt that records an applied row


@dataclass(frozen=True)
class Chain:
    """A profile's receipts as stored (C16): in stored order, the head kept apart, and
    the applied history rows with the receipt each belongs to."""

    receipts: list[Receipt]
    head: Head | None
    history: list[HistoryLink]


@dataclass(frozen=True)
class Confirmation:
    """A double opt-in confirmation (C8): pending until `confirmed_at` is set."""

    confirmation_id: str
    account_id: str
    profile_id: str
    channel: str
    list_id: str | None
    scope: str | None
    method: str | None
    email: str
    requested_at: datetime | None = None
    confirmed_at: datetime | None = None
    # C15: the pending subscribe's evidence, notice and jurisdiction, for the receipt
    # written when the person confirms.
    evidence: str | None = None
    notice: str | None = None
    jurisdiction: str | None = None


@dataclass(frozen=True)
class SuppressionList:
    """The suppressions in force for a profile, as the suppression service last said."""

    account_id: str
    profile_id: str
    suppressions: list[dict[str, Any]]
    changed_at: datetime


@dataclass(frozen=True)
class KnownProfile:
    """Attributes of a profile heard of through another topic (for the read side)."""

    account_id: str
    profile_id: str
    profile: dict[str, Any]


@dataclass(frozen=True)
class IdentityAct:
    """I1, C6: an opt-out (or a number's own START) kept for the address or number it
    was made for, so it holds for every profile that carries it, now or later.
    `identity` is `phone:<E.164>` or `email:<I1 normal form>` (`identity_key`)."""

    account_id: str
    identity: str
    act: Act
    # The trace headers of the input that brought it (X4); not kept in the ledger.
    headers: Mapping[str, str] | None = field(default=None, compare=False)


def identity_key(kind: str, normal_form: str) -> str:
    """The ledger key of an address (`email`) or number (`phone`) in its I1 form."""
    return f"{kind}:{normal_form}"


class ProfileStates(Protocol):
    """Profiles' consent rows, their audit trail and attributes, within one transaction."""

    async def lock_states(self, keys: Iterable[Key]) -> dict[Key, Stored]:
        """Every profile of `keys` (empty when missing), locked until commit."""

    async def save_states(self, states: Mapping[Key, Stored]) -> None:
        """Write back states and profile attributes loaded with `lock_states` (a missing
        profile's row is created here)."""

    async def recorded_acts(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """X2: which (account, act id) pairs the audit trail already holds."""

    async def append_history(self, rows: Sequence[HistoryRow]) -> None:
        """Append to the audit trail, in order."""

    async def remember_profiles(self, profiles: Sequence[KnownProfile]) -> None:
        """Merge attributes into profiles (created when missing); null values are ignored."""

    async def profile_email(self, key: Key) -> str | None:
        """The email address stored for a profile."""


class IdentityLedger(Protocol):
    """I1, C6: acts kept for an address or number, and the profiles that carry it."""

    async def lock_identities(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Hold each (account, identity) until commit, so that two batches about one
        address or number (a STOP and a new profile's subscribe, say) never miss each
        other's ledger rows and carriers."""

    async def identity_acts(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Act]]:
        """I1, C6: the acts kept for each (account, identity), oldest first."""

    async def add_identity_acts(self, rows: Sequence[IdentityAct]) -> None:
        """I1, C6: keep acts for addresses and numbers (a redelivered act is kept once)."""

    async def profiles_by_identity(
        self, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], list[str]]:
        """Profile ids that carry each (account, identity) now: the number their SMS
        consent belongs to, or their email address in the I1 normal form."""


class Accounts(Protocol):
    """Per-account settings: double opt-in, sender, SMS replies (C8, C13) and pages (W1–W3)."""

    async def account_settings(self, accounts: Iterable[str]) -> dict[str, AccountSettings]:
        """Settings of the accounts that set any (others are left out)."""

    async def save_account_settings(self, account_id: str, values: Mapping[str, Any]) -> None:
        """Set some of SETTING_FIELDS; the others keep their values."""

    async def page_settings(self, accounts: Iterable[str]) -> dict[str, PageSettings]:
        """Page settings (W1–W3) of the accounts that set any."""

    async def save_page_settings(self, account_id: str, values: Mapping[str, Any]) -> None:
        """Set some page settings; the others keep their values."""


class SuppressionReadModel(Protocol):
    """The suppressions in force per profile, as the suppression service last said (C14)."""

    async def suppressions(self, keys: Iterable[Key]) -> dict[Key, list[dict[str, Any]]]:
        """The suppression read model of the profiles that have one."""

    async def save_suppressions(self, lists: Sequence[SuppressionList]) -> None:
        """Keep the newest list per profile (an older change arriving late is ignored)."""


class Confirmations(Protocol):
    """Double opt-in confirmations (C8, C12), pending or used."""

    async def add_confirmations(self, confirmations: Sequence[Confirmation]) -> set[str]:
        """Record pending confirmations; the ids that are new (a redelivery adds none)."""

    async def confirmation(self, confirmation_id: str) -> Confirmation | None:
        """One confirmation, pending or used."""

    async def claim_confirmation(self, confirmation_id: str) -> bool:
        """Mark a confirmation used; False when it was used before."""


class Erasures(Protocol):
    """Erased people's keyed hashes, which hold a subscribe back until it has evidence (P2)."""

    async def erased_hashes(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (account, subject hash) pairs belong to an erased person (P2)."""

    async def lift_erasure(self, pairs: Sequence[tuple[str, str]]) -> None:
        """New consent with evidence: those addresses may be messaged again (P2, C11)."""


class Receipts(Protocol):
    """Consent receipts and their per-profile chains (C15, C16)."""

    async def receipt_heads(self, keys: Iterable[Key]) -> dict[Key, Head]:
        """C16: the end of each profile's receipt chain (profiles without one left out)."""

    async def append_receipts(self, receipts: Sequence[Receipt]) -> None:
        """C15, C16: append receipts in order and move each profile's head to its last."""

    async def receipt_chain(self, key: Key) -> Chain:
        """C16: a profile's receipts in stored order, its head and its applied history."""

    async def receipt_profiles(self, account_id: str) -> list[str]:
        """C16: every profile of the account with a receipt chain, in id order."""


class ConsentRepository(
    ProfileStates,
    IdentityLedger,
    Accounts,
    SuppressionReadModel,
    Confirmations,
    Erasures,
    Receipts,
    Protocol,
):
    """Every store of the consent service in one: what the PostgreSQL adapter
    (`adapters/repository.py`) and the in-memory fake implement, and what the HTTP API
    reads and writes directly. Use cases see it split, through `ConsentWork`."""


class PrivacyLedger(Protocol):
    """Where the overall status of data-subject requests is collected (P1)."""

    async def record_requests(self, requests: Sequence[PrivacyRequest]) -> None:
        """Remember requests as filed."""

    async def record_parts(self, parts: Sequence[PrivacyResult]) -> None:
        """Remember each service's part of a request."""


@dataclass(frozen=True)
class ConsentOptions:
    """The service's settings its use cases apply, bound by `bootstrap`."""

    hash_secret: str  # keys the hashes of addresses and numbers (P2, C16)
    email_double_opt_in: bool  # C8: for accounts that do not choose


class ConsentMails(Protocol):
    """The mails the consent service sends, built ready for the queue (their dedupe key
    makes a redelivered message queue nothing)."""

    def confirmation(
        self, confirmation: Confirmation, acct: AccountSettings, pages: PageSettings | None
    ) -> OutgoingMail:
        """C8, W3: the double opt-in mail whose signed link makes the subscription real."""

    def opt_out(
        self, key: Key, email: str, act_id: str, acct: AccountSettings, pages: PageSettings
    ) -> OutgoingMail:
        """W3: "you are unsubscribed", with a way back in (the preference centre)."""


class ConsentWork(Outbox, MailOutbox, Protocol):
    """One batch's (or one request's) transaction as the consent use cases see it, and
    their only port: the stores split by concern, the mails to build, the outbox
    (`publish`, `dead_letter`: sent only if the transaction commits, X2), the mail queue
    (`queue_mail`), the privacy part (`privacy`, P1) and the settings bound to it. The
    caller commits."""

    privacy: PrivacyStore

    @property
    def states(self) -> ProfileStates: ...

    @property
    def identities(self) -> IdentityLedger: ...

    @property
    def accounts(self) -> Accounts: ...

    @property
    def suppressions(self) -> SuppressionReadModel: ...

    @property
    def confirmations(self) -> Confirmations: ...

    @property
    def erasures(self) -> Erasures: ...

    @property
    def receipts(self) -> Receipts: ...

    @property
    def privacy_requests(self) -> PrivacyLedger: ...

    @property
    def mails(self) -> ConsentMails: ...

    @property
    def options(self) -> ConsentOptions: ...
