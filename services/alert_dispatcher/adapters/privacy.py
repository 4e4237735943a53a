"""The alert dispatcher's data about a person (P1–P3): the alerts their events
triggered and the mails those alerts became.

The dispatcher keeps no address of the profile, only keyed hashes of it on each alert
(to find alerts by email or phone), in the normal form of the address (I1), so a request
naming any spelling finds them; alerts stored before that form existed carry the hash of
the trimmed, case-folded spelling, which is looked for too. Recipients are team members,
not the person; their addresses stay. Erase empties the alert mails' bodies (the
person's name, properties and event were rendered into them) and cancels those not sent
yet.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Any

import asyncpg

from shared.contracts import PrivacyRequest
from shared.db.rows import affected, row_dicts
from shared.domain.identity import email_identity
from shared.privacy import hash_secret, subject_hashes
from shared.settings import Settings


class AlertPrivacy:
    service = "alert_dispatcher"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def resolve(self, conn: asyncpg.Connection, request: PrivacyRequest) -> list[str]:
        ids = {request.profile_id} if request.profile_id else set()
        secret = hash_secret(self._settings)
        hashes = subject_hashes(secret, request.email, request.phone_number)
        hashes += legacy_email_hashes(secret, request.email)
        if hashes:
            rows = await conn.fetch(
                "SELECT DISTINCT profile_id FROM alerts WHERE account_id = $1"
                " AND subject_hashes && $2::text[]",
                request.account_id,
                hashes,
            )
            ids |= {r["profile_id"] for r in rows}
        return sorted(ids)

    async def export(
        self, conn: asyncpg.Connection, account_id: str, profile_ids: list[str]
    ) -> dict[str, Any]:
        alerts = await conn.fetch(
            "SELECT alert_id, profile_id, flow_id, flow_version, step_id, status, reason,"
            " requested_at, completed_at FROM alerts WHERE account_id = $1"
            " AND profile_id = ANY($2::text[]) ORDER BY requested_at LIMIT 5000",
            account_id,
            profile_ids,
        )
        deliveries = await conn.fetch(
            "SELECT d.alert_id, d.email AS recipient, d.status, d.error, d.completed_at,"
            " convert_from(m.content, 'UTF8') AS mail FROM alert_deliveries d"
            " LEFT JOIN mail_queue m ON m.id = d.mail_id"
            " WHERE d.alert_id = ANY($1::text[]) ORDER BY d.alert_id, d.email",
            [a["alert_id"] for a in alerts],
        )
        return {"alerts": row_dicts(alerts), "deliveries": row_dicts(deliveries)}

    async def erase(
        self, conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
    ) -> dict[str, int]:
        alerts = "SELECT alert_id FROM alerts WHERE account_id = $1 AND profile_id = ANY($2)"
        args = (request.account_id, profile_ids)
        mails = affected(
            await conn.execute(
                "UPDATE mail_queue SET content = ''::bytea, last_error = NULL,"
                " status = CASE WHEN status IN ('pending', 'sending') THEN 'cancelled'"
                " ELSE status END, finalized = true"
                f" WHERE id IN (SELECT mail_id FROM alert_deliveries WHERE alert_id IN ({alerts}))",
                *args,
            )
        )
        deliveries = affected(
            await conn.execute(
                "UPDATE alert_deliveries SET status = 'skipped', error = 'profile erased',"
                " completed_at = now()"
                f" WHERE status = 'pending' AND alert_id IN ({alerts})",
                *args,
            )
        )
        finished = affected(
            await conn.execute(
                "UPDATE alerts SET status = 'skipped', reason = 'profile erased',"
                " completed_at = now() WHERE status = 'sending' AND account_id = $1"
                " AND profile_id = ANY($2)",
                *args,
            )
        )
        return {"mail_queue": mails, "alert_deliveries": deliveries, "alerts": finished}


def legacy_email_hashes(secret: str, email: str | None) -> list[str]:
    """The hashes an alert stored before I1's normal form may carry for `email`: the
    HMAC of `strip().casefold()` of the spelling the profile had, tried for each of the
    address's NFC or NFD, Unicode- or IDNA-domain spellings (case did not matter then)."""
    key = email_identity(email)
    if not key:
        return []
    local, _, domain = key.rpartition("@")
    try:
        unicode_domain = domain.encode("ascii").decode("idna")
    except UnicodeError:
        unicode_domain = domain
    forms = {f"{local}@{d}" for d in (domain, unicode_domain)}
    forms |= {unicodedata.normalize("NFD", f) for f in forms}
    return sorted(
        hmac.new(secret.encode(), f"email:{f.casefold()}".encode(), hashlib.sha256).hexdigest()
        for f in forms
    )
