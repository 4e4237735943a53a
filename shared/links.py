"""HMAC-signed link tokens for confirm, unsubscribe and preference links (C12, A4).

A token is `base64url(json claims).base64url(hmac_sha256(secret, purpose + claims))`.
The purpose is part of the signature, so a confirm token cannot be replayed as an
unsubscribe token, and the claims bind the account, subject, channel and scope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any


class InvalidToken(ValueError):
    """The token was tampered with, made with another secret, or is for another purpose."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Decode unpadded base64url, accepting only the one encoding `_b64` writes.

    The decoder alone skips characters outside the alphabet and ignores stray low bits in
    the last character, so several strings decode to the same bytes; a token must be
    exactly what we issued, byte for byte (C12)."""
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def _mac(secret: str, purpose: str, body: str) -> bytes:
    return hmac.new(secret.encode(), f"{purpose}.{body}".encode(), hashlib.sha256).digest()


def sign(secret: str, purpose: str, claims: dict[str, Any]) -> str:
    """A token for `purpose` carrying `claims` (JSON-serialisable)."""
    body = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    return f"{body}.{_b64(_mac(secret, purpose, body))}"


def verify(secret: str | Sequence[str], purpose: str, token: str) -> dict[str, Any]:
    """The claims of a valid token; raises InvalidToken otherwise.

    `secret` may be a list of keys (LINK_SECRETS, X6): a token signed with any of them is
    valid, so links already mailed keep working while the signing key rotates.
    """
    keys = [secret] if isinstance(secret, str) else list(secret)
    try:
        body, mac = token.split(".", 1)
        given = _unb64(mac)
        ok = False
        for key in keys:
            # Every key is tried (no early exit): the time taken does not tell which matched.
            ok = hmac.compare_digest(given, _mac(key, purpose, body)) or ok
        if not ok:
            raise InvalidToken("signature does not match")
        claims = json.loads(_unb64(body))
    except InvalidToken:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    return claims
