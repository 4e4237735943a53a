"""The consent service's data about a person (P1–P3): consent state and history,
confirmations, confirmation mails, the suppression read model; and the collected status
of every request.

Erase keeps the audit trail (what, when, how: C2) with the phone number and free-text
evidence blanked, the consent receipts (C15) without the personal values kept beside
them (the receipts commit to keyed hashes only, so each chain still verifies: C16), and
the keyed hashes of the email and phone number so that a later
subscribe for them is held back until it carries evidence (P2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from services.consent.domain.model import ProfileConsent, normalize_phone
from services.consent.ports import identity_key
from shared.contracts import PrivacyRequest, PrivacyResult
from shared.contracts.privacy import PRIVACY_SERVICES
from shared.db.rows import affected, plain, row_dicts
from shared.db.uow import UnitOfWork
from shared.domain.identity import email_identity, phone_identity
from shared.privacy import normalize_email, profile_hash, subject_hashes

ERASED = "[erased]"


class ConsentPrivacy:
    service = "consent"

    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def resolve(self, conn: asyncpg.Connection, request: PrivacyRequest) -> list[str]:
        ids = {request.profile_id} if request.profile_id else set()
        if request.email:
            rows = await conn.fetch(
                "SELECT profile_id FROM consent_state WHERE account_id = $1"
                " AND email_key = $2"
                " UNION SELECT profile_id FROM confirmations WHERE account_id = $1"
                " AND email_key = $2",
                request.account_id,
                normalize_email(request.email),
            )
            ids |= {r["profile_id"] for r in rows}
        if request.phone_number:
            rows = await conn.fetch(
                "SELECT profile_id FROM consent_state WHERE account_id = $1"
                " AND (phone_number = $2 OR profile->>'phone_number' = $2)",
                request.account_id,
                normalize_phone(request.phone_number),
            )
            ids |= {r["profile_id"] for r in rows}
        return sorted(ids)

    async def export(
        self, conn: asyncpg.Connection, account_id: str, profile_ids: list[str]
    ) -> dict[str, Any]:
        states = await conn.fetch(
            "SELECT profile_id, profile, state, updated_at FROM consent_state"
            " WHERE account_id = $1 AND profile_id = ANY($2::text[]) ORDER BY profile_id",
            account_id,
            profile_ids,
        )
        history = await conn.fetch(
            "SELECT profile_id, slot, action, result, status, consented_at, act_at, method,"
            " act_id, list_id, scope, evidence, phone_number, recorded_at FROM consent_history"
            " WHERE account_id = $1 AND profile_id = ANY($2::text[]) ORDER BY id",
            account_id,
            profile_ids,
        )
        confirmations = await conn.fetch(
            "SELECT profile_id, channel, list_id, scope, method, email, requested_at,"
            " confirmed_at FROM confirmations WHERE account_id = $1"
            " AND profile_id = ANY($2::text[]) ORDER BY requested_at",
            account_id,
            profile_ids,
        )
        receipts = await conn.fetch(
            "SELECT profile_id, receipt, hash, personal FROM consent_receipts"
            " WHERE account_id = $1 AND profile_id = ANY($2::text[]) ORDER BY profile_id,"
            " sequence, id",
            account_id,
            profile_ids,
        )
        profiles = []
        for s in states:
            view = ProfileConsent.from_json(s["state"]).view()
            profiles.append(
                {
                    "profile_id": s["profile_id"],
                    "profile": s["profile"],
                    "consent": {k: plain_dict(v) for k, v in view.items()},
                    "updated_at": plain(s["updated_at"]),
                }
            )
        return {
            "profiles": profiles,
            "history": row_dicts(history),
            "confirmations": row_dicts(confirmations),
            # C15, P3: every receipt, with the personal values it commits to.
            "receipts": [
                {**r["receipt"], "hash": r["hash"], "personal": r["personal"]} for r in receipts
            ],
        }

    async def erase(
        self, conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
    ) -> dict[str, int]:
        emails, phones = await _addresses(conn, request, profile_ids)
        hashes = sorted(
            {h for e in emails for h in subject_hashes(self._secret, e, None)}
            | {h for p in phones for h in subject_hashes(self._secret, None, p)}
            | {profile_hash(self._secret, p) for p in profile_ids}
        )
        await _remember_erased(conn, request, hashes)
        out = {"erased_subjects": len(hashes)}
        out["consent_history"] = await _blank_history(conn, request, profile_ids)
        out["mail_queue"] = await _drop_mails(conn, request.account_id, profile_ids, emails)
        out |= await _delete_rows(conn, request.account_id, profile_ids)
        out["identity_acts"] = await _drop_identity_acts(conn, request.account_id, emails, phones)
        await drop_sms_replies(conn, phones)
        return out


async def _addresses(
    conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
) -> tuple[set[str], set[str]]:
    """Every email address and phone number held for the profiles, and the request's."""
    account = request.account_id
    addresses = await conn.fetch(
        "SELECT email, phone_number, profile->>'email' AS pemail,"
        " profile->>'phone_number' AS pphone FROM consent_state"
        " WHERE account_id = $1 AND profile_id = ANY($2::text[])"
        " UNION ALL SELECT email, NULL, NULL, NULL FROM confirmations"
        " WHERE account_id = $1 AND profile_id = ANY($2::text[])"
        " UNION ALL SELECT NULL, phone_number, NULL, NULL FROM consent_history"
        " WHERE account_id = $1 AND profile_id = ANY($2::text[])"
        " AND phone_number IS NOT NULL",
        account,
        profile_ids,
    )
    emails = {a for r in addresses for a in (r["email"], r["pemail"]) if a}
    phones = {a for r in addresses for a in (r["phone_number"], r["pphone"]) if a}
    emails |= {request.email} if request.email else set()
    phones |= {request.phone_number} if request.phone_number else set()
    return emails, phones


async def _remember_erased(
    conn: asyncpg.Connection, request: PrivacyRequest, hashes: list[str]
) -> None:
    """P2: the keyed hashes hold back a later subscribe without evidence."""
    account = request.account_id
    await conn.execute(
        "INSERT INTO erased_subjects (account_id, subject_hash, request_id)"
        " SELECT $1, unnest($2::text[]), $3 ON CONFLICT (account_id, subject_hash)"
        " DO UPDATE SET request_id = EXCLUDED.request_id, erased_at = now()",
        account,
        hashes,
        request.request_id,
    )


async def _blank_history(
    conn: asyncpg.Connection, request: PrivacyRequest, profile_ids: list[str]
) -> int:
    account = request.account_id
    # The audit trail stays (C2), without the number and free-text evidence, and
    # records the erase itself.
    blanked = affected(
        await conn.execute(
            "UPDATE consent_history SET phone_number = NULL,"
            " evidence = CASE WHEN evidence IS NULL THEN NULL ELSE $3 END"
            " WHERE account_id = $1 AND profile_id = ANY($2::text[])",
            account,
            profile_ids,
            ERASED,
        )
    )
    # C15, C16: receipts stay, without the personal values beside them; they commit to
    # keyed hashes only, so every chain still verifies.
    await conn.execute(
        "UPDATE consent_receipts SET personal = NULL WHERE account_id = $1"
        " AND profile_id = ANY($2::text[]) AND personal IS NOT NULL",
        account,
        profile_ids,
    )
    await conn.execute(
        "INSERT INTO consent_history (account_id, profile_id, slot, action, result, status,"
        " act_at, method, act_id) SELECT $1, p, '*', 'erase', 'erased', 'never_subscribed',"
        " $3, 'privacy_request', $4 FROM unnest($2::text[]) AS p",
        account,
        profile_ids,
        request.requested_at,
        f"privacy:{request.request_id}",
    )
    return blanked


async def _drop_mails(
    conn: asyncpg.Connection, account: str, profile_ids: list[str], emails: set[str]
) -> int:
    """Unsent mails to the addresses, and unsent confirmation mails of the profiles."""
    # Mails go to an address as the profile spelled it: every stored spelling is here.
    mails = sorted({e.strip().lower() for e in emails})
    cids = [
        r["confirmation_id"]
        for r in await conn.fetch(
            "SELECT confirmation_id FROM confirmations WHERE account_id = $1"
            " AND profile_id = ANY($2::text[])",
            account,
            profile_ids,
        )
    ]
    return affected(
        await conn.execute(
            "DELETE FROM mail_queue WHERE account_id = $1 AND (lower(rcpt_to) = ANY($2)"
            " OR dedupe_key = ANY($3::text[]))",
            account,
            mails,
            [f"consent-confirm:{c}" for c in cids],
        )
    )


async def _delete_rows(
    conn: asyncpg.Connection, account: str, profile_ids: list[str]
) -> dict[str, int]:
    out = {}
    # C16: the end of each receipt chain outlives the consent row that kept it (the
    # receipts stay, and a removed last receipt is still detected).
    await conn.execute(
        "INSERT INTO consent_receipt_heads (account_id, profile_id, sequence, hash)"
        " SELECT account_id, profile_id, receipt_sequence, receipt_hash FROM consent_state"
        " WHERE account_id = $1 AND profile_id = ANY($2::text[]) AND receipt_hash IS NOT NULL"
        " ON CONFLICT (account_id, profile_id) DO UPDATE SET sequence = EXCLUDED.sequence,"
        " hash = EXCLUDED.hash WHERE consent_receipt_heads.sequence < EXCLUDED.sequence",
        account,
        profile_ids,
    )
    for table in ("confirmations", "consent_state", "suppression_view"):
        out[table] = affected(
            await conn.execute(
                f"DELETE FROM {table} WHERE account_id = $1 AND profile_id = ANY($2::text[])",
                account,
                profile_ids,
            )
        )
    # Exports answered earlier hold the person's data too.
    out["privacy_parts"] = affected(
        await conn.execute(
            "UPDATE privacy_parts SET data = NULL WHERE account_id = $1"
            " AND profile_ids && $2::text[] AND data IS NOT NULL",
            account,
            profile_ids,
        )
    )
    return out


async def _drop_identity_acts(
    conn: asyncpg.Connection, account: str, emails: set[str], phones: set[str]
) -> int:
    """The opt-outs kept for the person's addresses and numbers (I1, C6) name them: they
    go, and the erase hold (the keyed hashes above) protects every profile that carries
    them in their place, more strictly (nothing but evidence lifts it)."""
    keys = {identity_key("email", k) for e in emails if (k := email_identity(e))}
    keys |= {identity_key("phone", k) for p in phones if (k := phone_identity(p))}
    if not keys:
        return 0
    return affected(
        await conn.execute(
            "DELETE FROM identity_acts WHERE account_id = $1 AND identity = ANY($2::text[])",
            account,
            sorted(keys),
        )
    )


def plain_dict(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return plain(value)


async def drop_sms_replies(conn: asyncpg.Connection, phones: set[str]) -> None:
    """Unsent SMS keyword replies are keyed by the number as the gateway sent it."""
    keys = {p.encode() for p in phones} | {n.encode() for p in phones if (n := normalize_phone(p))}
    if keys:
        await conn.execute("DELETE FROM outbox WHERE key = ANY($1::bytea[])", list(keys))


async def erased_hashes(
    conn: asyncpg.Connection, account_hashes: Sequence[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (account, hash) pairs belong to an erased person."""
    if not account_hashes:
        return set()
    rows = await conn.fetch(
        "SELECT e.account_id, e.subject_hash FROM erased_subjects e"
        " JOIN unnest($1::text[], $2::text[]) AS k(a, h)"
        " ON e.account_id = k.a AND e.subject_hash = k.h",
        [a for a, _ in account_hashes],
        [h for _, h in account_hashes],
    )
    return {(r["account_id"], r["subject_hash"]) for r in rows}


async def lift_erasure(conn: asyncpg.Connection, account_hashes: Sequence[tuple[str, str]]) -> None:
    """New consent with evidence: the address may be messaged again (P2, C11)."""
    if account_hashes:
        await conn.execute(
            "DELETE FROM erased_subjects e USING unnest($1::text[], $2::text[]) AS k(a, h)"
            " WHERE e.account_id = k.a AND e.subject_hash = k.h",
            [a for a, _ in account_hashes],
            [h for _, h in account_hashes],
        )


# --- the overall status of requests (P1) -----------------------------------------------


async def record_requests(conn: asyncpg.Connection, requests: Sequence[PrivacyRequest]) -> None:
    if requests:
        await conn.executemany(
            "INSERT INTO privacy_requests (request_id, account_id, action, requested_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [(r.request_id, r.account_id, r.action, r.requested_at) for r in requests],
        )


async def record_parts(conn: asyncpg.Connection, parts: Sequence[PrivacyResult]) -> None:
    if not parts:
        return
    await conn.executemany(
        "INSERT INTO privacy_parts (request_id, account_id, service, action, profile_ids,"
        " data, erased, completed_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)"
        " ON CONFLICT DO NOTHING",
        [
            (
                p.request_id,
                p.account_id,
                p.service,
                p.action,
                p.profile_ids,
                p.data,
                p.erased,
                p.completed_at,
            )
            for p in parts
        ],
    )
    # An export part that lands after an erase of the same person is not kept.
    await conn.execute(
        "UPDATE privacy_parts p SET data = NULL FROM privacy_parts e"
        " WHERE e.account_id = p.account_id AND e.action = 'erase' AND p.action = 'export'"
        " AND p.data IS NOT NULL AND p.profile_ids && e.profile_ids"
        " AND e.completed_at > p.completed_at AND p.request_id = ANY($1::text[])",
        [p.request_id for p in parts],
    )


async def request_status(
    conn: asyncpg.Connection, account_id: str, request_id: str
) -> dict[str, Any] | None:
    """The request's overall status: which services are done, and the export document
    assembled from their parts once all four are in (P1, P3)."""
    req = await conn.fetchrow(
        "SELECT action, requested_at, received_at FROM privacy_requests"
        " WHERE account_id = $1 AND request_id = $2",
        account_id,
        request_id,
    )
    parts = await conn.fetch(
        "SELECT service, action, profile_ids, data, erased, completed_at FROM privacy_parts"
        " WHERE account_id = $1 AND request_id = $2",
        account_id,
        request_id,
    )
    if req is None and not parts:
        return None
    by_service = {p["service"]: p for p in parts}
    done = [s for s in PRIVACY_SERVICES if s in by_service]
    action = req["action"] if req else parts[0]["action"]
    status: dict[str, Any] = {
        "request_id": request_id,
        "account_id": account_id,
        "action": action,
        "status": "done" if len(done) == len(PRIVACY_SERVICES) else "in_progress",
        "services": {
            s: (
                {
                    "status": "done",
                    "completed_at": plain(by_service[s]["completed_at"]),
                    "profile_ids": list(by_service[s]["profile_ids"]),
                    **({"erased": by_service[s]["erased"]} if action == "erase" else {}),
                }
                if s in by_service
                else {"status": "pending"}
            )
            for s in PRIVACY_SERVICES
        },
        "requested_at": plain(req["requested_at"]) if req else None,
        "profile_ids": sorted({i for p in parts for i in p["profile_ids"]}),
    }
    if action == "export" and status["status"] == "done":
        status["document"] = {
            "request_id": request_id,
            "account_id": account_id,
            "profile_ids": status["profile_ids"],
            **{s: by_service[s]["data"] for s in PRIVACY_SERVICES},
        }
    return status


class PostgresPrivacyLedger:
    """`PrivacyLedger` (services/consent/ports.py) on a unit of work's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def record_requests(self, requests: Sequence[PrivacyRequest]) -> None:
        await record_requests(self._uow.conn, requests)

    async def record_parts(self, parts: Sequence[PrivacyResult]) -> None:
        await record_parts(self._uow.conn, parts)
