"""A profile's consent as the consent service keeps it (C1, C2, C6, C10, X3). Pure.

Consent lives in *slots*, each with a status and the version of the last act applied to
it (X3: acts are ordered by `(act_at, act_id)`, per channel, each act as a whole):

- `email`, `sms_marketing`, `sms_transactional`, `push`: the channels (C1);
- `list:<id>`: a list subscription (email);
- `scope:client:<id>` and `scope:user:<client>/<user>`: scoped email opt-outs (C10). The
  group-level opt-out is the `email` slot itself being `unsubscribed`.

The profile also keeps its act log (`ProfileConsent.log`): every act received, with the
time it was received and the policy in force then. An act that arrives late (older than
the newest act of its channel) is judged by folding the whole log in time order, so the
final state never depends on arrival order (X3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal, overload

from services.consent.domain.records import quick_init
from shared.domain.identity import phone_identity
from shared.domain.text import visible

Status = Literal["subscribed", "unsubscribed", "never_subscribed"]
NEVER = "never_subscribed"
CHANNEL_SLOTS = ("email", "sms_marketing", "sms_transactional", "push")
SMS_SLOTS = ("sms_marketing", "sms_transactional")
MIN_CONSENTED_AT = datetime(1990, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=5)  # X3: how far past its receipt an act may be dated

Version = tuple[datetime, int, str]
"""X3: an act's place in time order: `(act_at, rank, act_id)`. `rank` puts an opt-out
after every other act with the same time (`OPT_OUT_RANK`), so a tie between an opt-in and
an opt-out ends opted out whatever the ids or the arrival order; the id only orders acts
of the same kind and time."""
OPT_IN_RANK = 0
OPT_OUT_RANK = 1


def version_rank(action: str) -> int:
    """X3: opt-outs sort last among acts of the same time."""
    return OPT_OUT_RANK if action == "unsubscribe" else OPT_IN_RANK


_ISO: dict[int, tuple[datetime, str]] = {}


def iso(at: datetime) -> str:
    """`at.isoformat()`, remembered for the few datetimes written many times over: an
    act's time and the time a batch was received are written in a profile's slots, its
    act log and its receipt. By the object itself (held here, so its id is not reused
    while remembered); a few dozen at most."""
    hit = _ISO.get(id(at))
    if hit is not None and hit[0] is at:
        return hit[1]
    text = at.isoformat()
    if len(_ISO) >= 64:
        _ISO.clear()
    _ISO[id(at)] = (at, text)
    return text


def version_to_json(version: Version | None) -> list[Any] | None:
    return [iso(version[0]), version[2], version[1]] if version else None


def version_from_json(data: Any) -> Version | None:
    """A stored version; one stored before ranks existed (`[at, id]`) ranks as an opt-in,
    which only makes a same-time opt-out arriving later win (the protective side)."""
    if not data:
        return None
    rank = int(data[2]) if len(data) > 2 else OPT_IN_RANK
    return (datetime.fromisoformat(data[0]), rank, str(data[1]))


def plain_zone(at: datetime) -> datetime:
    """`at` with its offset held by the standard library's `timezone` (`UTC` for zero): the
    same instant, offset and text. A time parsed by pydantic carries pydantic_core's
    `TzInfo`, and every comparison of it (`clamp`, `effective`, ordering acts) and every
    `isoformat` calls back into that object for its offset: about 70 times the cost of a
    comparison of two `timezone` times. An act's time is compared and written several
    times per act, so it is converted once where the act is made. Naive times stay as
    they are."""
    offset = at.utcoffset()
    return at if offset is None else at.replace(tzinfo=timezone(offset))


def clamp(at: datetime) -> datetime:
    """C3: nothing is recorded earlier than 1990-01-01T00:00:00Z."""
    return max(at, MIN_CONSENTED_AT)


def normalize_phone(number: str | None) -> str | None:
    """The number in the one form it is compared in (I1: E.164, `+1 555-555-0100` ⇒
    `+15555550100`), None for none."""
    return phone_identity(number)


def list_slot(list_id: str) -> str:
    return f"list:{list_id}"


def scope_slot(scope: str) -> str:
    return f"scope:{scope}"


def scope_name(level: str, client_id: str | None, user_id: str | None) -> str:
    """C10's scope as the flow executor reads it: 'group', 'client:<id>', 'user:<c>/<u>'."""
    if level == "client" and client_id:
        return f"client:{client_id}"
    if level == "user" and client_id and user_id:
        return f"user:{client_id}/{user_id}"
    return "group"


@quick_init
@dataclass(frozen=True, slots=True)
class Slot:
    """One slot's consent: status, when, how, the phone number (SMS) and its version."""

    status: Status = "never_subscribed"
    consented_at: datetime | None = None
    method: str | None = None
    phone_number: str | None = None
    version: Version | None = None

    def to_json(self) -> dict[str, Any]:
        version = self.version
        return {
            "status": self.status,
            "consented_at": iso(self.consented_at) if self.consented_at else None,
            "method": self.method,
            "phone_number": self.phone_number,
            "version": [iso(version[0]), version[2], version[1]] if version else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Slot:
        at = data.get("consented_at")
        return cls(
            status=data.get("status", "never_subscribed"),
            consented_at=datetime.fromisoformat(at) if at else None,
            method=data.get("method"),
            phone_number=data.get("phone_number"),
            version=version_from_json(data.get("version")),
        )


NEVER_SLOT = Slot()  # a slot no act has touched (frozen, so one serves every profile)


@quick_init
@dataclass(frozen=True, slots=True)
class ProfileConsent:
    """Every slot of one profile, and the phone number SMS consent belongs to (C6)."""

    slots: Mapping[str, Slot] = field(default_factory=dict)
    phone_number: str | None = None
    phone_version: Version | None = None
    log: ActLog = field(default_factory=lambda: ActLog())
    # C6, C11: numbers this profile moved away from while their SMS was unsubscribed. A
    # new number starts `never_subscribed`, but a number that comes back keeps its opt-out.
    opted_out_numbers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.log, ActLog):  # a plain sequence of entries
            object.__setattr__(self, "log", ActLog(self.log))

    def slot(self, key: str) -> Slot:
        return self.slots.get(key, NEVER_SLOT)

    def status(self, key: str) -> Status:
        return self.slot(key).status

    def with_slot(self, key: str, slot: Slot) -> ProfileConsent:
        return replace(self, slots={**self.slots, key: slot})

    @property
    def lists(self) -> dict[str, Status]:
        return {
            k.removeprefix("list:"): s.status
            for k, s in sorted(self.slots.items())
            if k.startswith("list:") and s.status != "never_subscribed"
        }

    @property
    def opt_outs(self) -> list[str]:
        """C10: 'group' when email is unsubscribed, then every scoped opt-out in force."""
        out = ["group"] if self.status("email") == "unsubscribed" else []
        out += sorted(
            k.removeprefix("scope:")
            for k, s in self.slots.items()
            if k.startswith("scope:") and s.status == "unsubscribed"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        slots = self.slots
        return {
            "slots": {k: slots[k].to_json() for k in sorted(slots)},
            "phone_number": self.phone_number,
            "phone_version": version_to_json(self.phone_version),
            "log": self.log.to_json(),
            "opted_out_numbers": sorted(self.opted_out_numbers),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ProfileConsent:
        if not data:
            return cls()
        return cls(
            slots={k: Slot.from_json(v) for k, v in (data.get("slots") or {}).items()},
            phone_number=data.get("phone_number"),
            phone_version=version_from_json(data.get("phone_version")),
            log=ActLog.from_json(data.get("log") or ()),
            opted_out_numbers=frozenset(data.get("opted_out_numbers") or ()),
        )

    def signature(self) -> tuple:
        """What an act can change that anyone can see: every slot's status and the phone
        number (X3 compares it to tell a stale act from one that matters)."""
        return (
            tuple(sorted((k, s.status) for k, s in self.slots.items() if s.status != NEVER)),
            self.phone_number,
        )

    def newest_version(self, channel: str | None = None) -> Version | None:
        """The newest act received for `channel` (X3: the SMS purposes are one channel),
        or for any channel (C6: an act that carries a phone number is late when older
        than any act of the profile)."""
        versions = self.log.versions(channel)
        versions += [
            s.version
            for k, s in self.slots.items()
            if s.version and (channel is None or slot_channel(k) == channel)
        ]
        return max(versions, default=None)

    def view(self) -> dict[str, Any]:
        """The state as `ConsentState` carries it (C9): channels, lists, opt-outs."""
        out: dict[str, Any] = {}
        for key in CHANNEL_SLOTS:
            s = self.slot(key)
            out[key] = {
                "status": s.status,
                "consented_at": s.consented_at,
                "method": s.method,
                "phone_number": s.phone_number if key in SMS_SLOTS else None,
            }
        out["lists"] = self.lists
        out["opt_outs"] = self.opt_outs
        return out


def slot_channel(key: str) -> str:
    """The channel a slot belongs to: lists and scopes are email (C10)."""
    if key in SMS_SLOTS:
        return "sms"
    if key == "push":
        return "push"
    return "email"


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@quick_init
@dataclass(frozen=True, slots=True)
class Act:
    """One consent act, whatever brought it (command, link, keyword, spam complaint)."""

    act_id: str
    action: Literal["subscribe", "unsubscribe", "resubscribe"]
    channel: Literal["email", "sms", "push"]
    act_at: datetime
    purpose: Literal["marketing", "transactional"] = "marketing"
    list_id: str | None = None
    scope: str = "group"
    method: str = "api"
    evidence: str | None = None
    historical_import: bool = False
    phone_number: str | None = None
    confirmed: bool = False  # the profile's own act: confirmation click, START (C8, C11)
    clicked: bool = False  # the profile used an unsubscribe link itself (C9)
    actor: str | None = None  # by whom (C2): API key name, command actor, "profile"
    claimed_at: datetime | None = None  # the future time claimed before clamping (X3)
    # C6: an act of the phone number itself (a keyword, or an SMS opt-out made under
    # another profile that carries the number), applied to a profile that carries the
    # number now or later. It never moves the profile from another number to this one:
    # while the profile has another number, it is only remembered for this one
    # (`opted_out_numbers`).
    number_only: bool = False
    # C15: the notice the person saw and the jurisdiction, kept in the act's receipt.
    notice: str | None = None
    jurisdiction: str | None = None

    @property
    def version(self) -> Version:
        return (self.act_at, version_rank(self.action), self.act_id)

    @property
    def has_evidence(self) -> bool:
        """C11: a reference to written consent has at least one visible character
        (zero-width, format and blank characters alone are no evidence)."""
        return visible(self.evidence)

    def to_json(self) -> dict[str, Any]:
        """The act as logged: fields at their default are left out (the log is read and
        written whole by every act of the profile, so its size is paid on each). Field
        by field, in the order of `_ACT_DEFAULTS` (`tests/unit/consent/test_state_json.py`
        holds it equal to writing every field that differs from its default)."""
        out: dict[str, Any] = {
            "act_id": self.act_id,
            "action": self.action,
            "channel": self.channel,
            "act_at": iso(self.act_at),
        }
        if self.purpose != "marketing":
            out["purpose"] = self.purpose
        if self.list_id is not None:
            out["list_id"] = self.list_id
        if self.scope != "group":
            out["scope"] = self.scope
        if self.method != "api":
            out["method"] = self.method
        if self.evidence is not None:
            out["evidence"] = self.evidence
        if self.historical_import:
            out["historical_import"] = self.historical_import
        if self.phone_number is not None:
            out["phone_number"] = self.phone_number
        if self.confirmed:
            out["confirmed"] = self.confirmed
        if self.clicked:
            out["clicked"] = self.clicked
        if self.actor is not None:
            out["actor"] = self.actor
        if self.number_only:
            out["number_only"] = self.number_only
        if self.notice is not None:
            out["notice"] = self.notice
        if self.jurisdiction is not None:
            out["jurisdiction"] = self.jurisdiction
        if self.claimed_at is not None:
            out["claimed_at"] = iso(self.claimed_at)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Act:
        return cls(
            **{
                **data,
                "act_at": datetime.fromisoformat(data["act_at"]),
                "claimed_at": _dt(data.get("claimed_at")),
            }
        )


_ACT_DEFAULTS = tuple(
    (f.name, f.default)
    for f in fields(Act)
    if f.name not in ("act_id", "action", "channel", "act_at", "claimed_at")
)


@quick_init
@dataclass(frozen=True, slots=True)
class Policy:
    """What decides an act besides the state: the account's settings and suppressions."""

    email_double_opt_in: bool = True
    manually_suppressed: bool = False  # a global manual email suppression is in force (C9)
    spam_suppressed: bool = False  # a global spam complaint is in force (S5)

    def relifts(self, act: Act) -> bool:
        """C9, S5: a subscribe of an already subscribed email still emits its event when
        that event lifts a suppression (manual; spam complaint with evidence)."""
        return self.manually_suppressed or (self.spam_suppressed and act.has_evidence)


@quick_init
@dataclass(frozen=True, slots=True)
class Logged:
    """One act as received: the act (its time already clamped), when it was received and
    the policy in force then, so that folding the log later decides it the same way."""

    act: Act
    received_at: datetime
    policy: Policy

    def to_json(self) -> dict[str, Any]:
        return {
            "act": self.act.to_json(),
            "received_at": iso(self.received_at),
            "doi": self.policy.email_double_opt_in,
            "manual": self.policy.manually_suppressed,
            "spam": self.policy.spam_suppressed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Logged:
        return cls(
            Act.from_json(data["act"]),
            datetime.fromisoformat(data["received_at"]),
            Policy(bool(data.get("doi")), bool(data.get("manual")), bool(data.get("spam"))),
        )


class ActLog(Sequence[Logged]):
    """A profile's act log (X3): a sequence of `Logged`, kept as stored until read.

    Every act reads and writes its profile's whole log, and an act in time order only
    needs the ids and versions of the acts logged before it; the entries themselves are
    read only to refold the log for a late act. So entries loaded from JSON stay JSON
    until one is read (then parsed once), and go back to JSON as they came. Without
    this, each act parsed and re-serialised every entry: with 100 logged acts an act
    cost 15 to 25 times one on a new profile (`python -m bench.consent_history`).
    Immutable like the state holding it: `plus` returns a new log."""

    __slots__ = ("_items",)

    def __init__(self, entries: Iterable[Logged | dict[str, Any]] = ()) -> None:
        # Each item is a parsed entry or the JSON object it was stored as; a JSON item
        # is replaced by its parsed entry the first time it is read (same value).
        self._items: list[Logged | dict[str, Any]] = list(entries)

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> ActLog:
        return cls(e if isinstance(e, dict) else dict(e) for e in data)

    def to_json(self) -> list[Any]:
        return [i if isinstance(i, dict) else i.to_json() for i in self._items]

    def plus(self, entry: Logged) -> ActLog:
        return ActLog([*self._items, entry])

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Logged: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Logged]: ...

    def __getitem__(self, index: int | slice) -> Logged | Sequence[Logged]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self._items))[index])
        item = self._items[index]
        if isinstance(item, dict):
            item = Logged.from_json(item)
            self._items[index] = item
        return item

    def __iter__(self) -> Iterator[Logged]:
        for i in range(len(self._items)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ActLog):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ActLog({list(self)!r})"

    def has_act(self, act_id: str) -> bool:
        """Whether an act with this id was logged (X2: the same act again is a no-op)."""
        return any(
            (i["act"]["act_id"] if isinstance(i, dict) else i.act.act_id) == act_id
            for i in self._items
        )

    def versions(self, channel: str | None = None) -> list[Version]:
        """The versions of the logged acts, of one channel or all."""
        out: list[Version] = []
        for i in self._items:
            if isinstance(i, dict):
                act = i["act"]
                if channel is None or act["channel"] == channel:
                    at = datetime.fromisoformat(act["act_at"])
                    out.append((at, version_rank(act["action"]), act["act_id"]))
            elif channel is None or i.act.channel == channel:
                out.append(i.act.version)
        return out


@quick_init
@dataclass(frozen=True, slots=True)
class Event:
    """A C9 subscription event to publish with the state after the act."""

    type: str
    channel: Literal["email", "sms", "push"]
    list_id: str | None = None
    scope: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of the append-only audit trail (C2)."""

    slot: str
    action: str
    result: Literal[
        "applied", "stale", "rejected", "pending_confirmation", "phone_changed", "held_erased"
    ]
    status: Status
    consented_at: datetime | None
    act_at: datetime
    method: str | None
    act_id: str
    list_id: str | None = None
    scope: str | None = None
    evidence: str | None = None
    phone_number: str | None = None
    actor: str | None = None
    claimed_at: datetime | None = None
    reason: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Confirmation:
    """A pending double opt-in confirmation to send (C8)."""

    channel: str
    list_id: str | None
    scope: str


@quick_init
@dataclass(frozen=True, slots=True)
class Outcome:
    state: ProfileConsent
    events: tuple[Event, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    confirmation: Confirmation | None = None
    rejection: str | None = None
    stale: bool = False  # X3: older than its channel's newest act and changed nothing
