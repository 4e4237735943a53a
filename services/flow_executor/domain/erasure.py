"""An erased person is not messaged again (P2, I1). Pure.

An erase leaves the executor no address, only subjects: a hash of each erased profile
id and the keyed hashes (`shared.privacy.subject_hashes`, `PRIVACY_HASH_SECRET`) of
every email and phone number held for those profiles or named by the request, each
with the time of the erase. Those hashes are taken over the one normal form of an
address (I1), so every spelling of an erased address meets its subject.

Before an `email` or `sms` step runs, the profile's subjects (its id, and the hashes of
the email and phone it carries now) are looked up; a match holds every message channel
of that profile: `Skipped: erased (P2)`. The hold on a channel lifts only when that very
profile was subscribed to that channel by a consent change that arrived after the erase
(the consent service re-subscribes an erased address only with evidence, C11) and its
consent still shows it subscribed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.domain.text import visible
from shared.privacy import subject_hashes

ERASED = "erased (P2)"

Family = str
"""A consent channel as the hold lifts it: `email`, `sms` (both purposes) or `push`."""

_SLOTS: Mapping[Family, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("sms_marketing", "sms_transactional"),
    "push": ("push",),
}


@dataclass(frozen=True)
class ErasureHold:
    """The newest erase a profile's subjects match, and when a subscribe to each channel
    family of that profile last arrived."""

    erased_at: datetime
    resubscribed: Mapping[Family, datetime] = field(default_factory=dict)


def profile_subject(profile_id: str) -> str:
    """The subject of a profile id: a SHA-256, so the hold keeps no id in clear."""
    return "profile:" + hashlib.sha256(profile_id.encode()).hexdigest()


def subjects(
    secret: str | None,
    profile_id: str | None,
    emails: Iterable[str | None] = (),
    phones: Iterable[str | None] = (),
) -> tuple[str, ...]:
    """The subjects of a profile id and of addresses (each in its normal form, I1). No
    address hash without the secret: then only the profile id is a subject."""
    found: set[str] = {profile_subject(profile_id)} if profile_id else set()
    if secret:
        found.update(h for e in emails if e for h in subject_hashes(secret, e, None))
        found.update(h for p in phones if p for h in subject_hashes(secret, None, p))
    return tuple(sorted(found))


def person_subjects(
    secret: str | None, profile_id: str, person: Mapping[str, Any] | None
) -> tuple[str, ...]:
    """The subjects of a profile as it is now: its id, its email, its phone number."""
    person = person or {}
    return subjects(secret, profile_id, [person.get("email")], [person.get("phone_number")])


def family(channel: str) -> Family:
    """`email`, `sms` or `push` for a channel or SMS slot (`sms_marketing`, ...)."""
    return "sms" if channel.startswith("sms") else channel


def resubscribed_families(
    change_type: str, channel: str, state: Mapping[str, Any], evidence: str | None
) -> set[Family]:
    """The families a consent change subscribed the profile to again after an erase: a
    `Subscribed to ...` change that carries evidence (the only subscribe the consent
    service applies for an erased person, C11, P2) on a channel whose state shows it
    subscribed. A subscribe without evidence was made before the consent service's own
    erase, however late it reaches the executor: it lifts nothing."""
    if not change_type.startswith("Subscribed to") or not visible(evidence):
        return set()
    fam = family(channel)
    slots = _SLOTS.get(fam, ())
    return {fam} if any(_status(state, s) == "subscribed" for s in slots) else set()


def erasure_block(
    channel: str, hold: ErasureHold | None, consent: Mapping[str, Any] | None
) -> str | None:
    """Why an erase holds a message on `channel` (`email`, `sms_marketing`, ...), or
    None: no erase matches, or the profile consented again after it on that channel."""
    if hold is None:
        return None
    fam = family(channel)
    again = hold.resubscribed.get(fam)
    if again is not None and again > hold.erased_at and _subscribed(consent, channel):
        return None
    return ERASED


def _status(state: Mapping[str, Any] | None, slot: str) -> str:
    return str(((state or {}).get(slot) or {}).get("status") or "never_subscribed")


def _subscribed(consent: Mapping[str, Any] | None, channel: str) -> bool:
    """The consent the lift needs: the channel itself subscribed (C5: SMS marketing
    covers transactional messages)."""
    if channel == "sms_transactional":
        return "subscribed" in (_status(consent, "sms_marketing"), _status(consent, channel))
    slot = "sms_marketing" if channel == "sms" else channel
    return _status(consent, slot) == "subscribed"


def alert_block(hold: ErasureHold | None, consent: Mapping[str, Any] | None) -> str | None:
    """P2: an internal alert about a person an erase holds is skipped too (the alert
    would carry the person to staff mailboxes), until the person consented again after
    the erase on some channel (then they are back, by their own act with evidence)."""
    if hold is None:
        return None
    if any(erasure_block(c, hold, consent) is None for c in ("email", "sms_marketing", "push")):
        return None
    return ERASED
