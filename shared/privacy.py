"""Keyed hashes of a person's addresses, kept after an erase (P2).

An erased person's email and phone number must not be stored, yet a later import of the
same address has to be recognised so that it is not messaged again. A bare SHA-256 of an
email is reversible by guessing (addresses are few and predictable), so the hash is an
HMAC under `PRIVACY_HASH_SECRET`, a secret of its own: rotating the link-signing secret
must not forget who was erased. Every service uses the same function, so a service can
also find the alerts or runs of an address without keeping the address itself.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from shared.domain.identity import email_identity, phone_identity
from shared.settings import Settings

MIN_SECRET_BYTES = 32
WELL_KNOWN = frozenset({"change-me", "secret", "changeme", "password", "dev-privacy-secret"})


def normalize_email(email: str) -> str:
    """The form an address is compared in (I1): `email_identity`, "" for a blank."""
    return email_identity(email) or ""


def normalize_phone(phone: str) -> str:
    """The form a number is compared in (I1): E.164, "" when it holds no digit."""
    return phone_identity(phone) or ""


def phone_forms(phone: str | None) -> list[str]:
    """The forms a number may be stored in (as sent, trimmed, and E.164): what an erase
    or export by phone number looks for."""
    if not phone:
        return []
    return sorted({phone, phone.strip(), normalize_phone(phone)} - {""})


@functools.lru_cache(maxsize=65536)
def subject_hash(secret: str, kind: str, value: str) -> str:
    """HMAC-SHA256 of one address (`kind` is `email`, `phone` or `profile`), hex. Cached: every
    subscribe checks its profile's addresses against the erased ones (P2)."""
    if kind == "email":
        norm = normalize_email(value)
    elif kind == "phone":
        norm = normalize_phone(value)
    else:
        norm = value  # `profile`: an id is compared as it is
    mac = hmac.new(secret.encode(), f"{kind}:{norm}".encode(), hashlib.sha256)
    return mac.hexdigest()


def subject_hashes(secret: str, email: str | None, phone: str | None) -> list[str]:
    """The hashes of whichever of `email` and `phone` are given."""
    out = []
    if email and normalize_email(email):
        out.append(subject_hash(secret, "email", email))
    if phone and normalize_phone(phone):
        out.append(subject_hash(secret, "phone", phone))
    return out


def profile_hash(secret: str, profile_id: str) -> str:
    """The keyed hash of an erased profile id (P2: a new event or act for the same id is
    held like one for the erased address)."""
    return subject_hash(secret, "profile", profile_id)


def hash_secret(settings: Settings) -> str:
    """The configured secret (startup refuses to run without a usable one)."""
    if settings.privacy_hash_secret is None:
        raise RuntimeError("PRIVACY_HASH_SECRET is not set")
    return settings.privacy_hash_secret.get_secret_value()


def secret_problem(settings: Settings) -> str | None:
    """Why `PRIVACY_HASH_SECRET` is unusable (fail closed, X6), or None."""
    secret = settings.privacy_hash_secret
    if secret is None or not secret.get_secret_value():
        return "PRIVACY_HASH_SECRET is missing"
    value = secret.get_secret_value()
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"PRIVACY_HASH_SECRET is shorter than {MIN_SECRET_BYTES} bytes"
    if value.strip().lower() in WELL_KNOWN:
        return "PRIVACY_HASH_SECRET is a well-known value"
    return None
