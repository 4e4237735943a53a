"""I1 and P1/P2 on the real dispatcher (broker, PostgreSQL, SMTP capture): one recipient
however the address is spelled, mailed at the spelling the flow wrote; a privacy request
finds the person's alerts by any spelling."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
import uuid
from datetime import UTC, datetime

from services.alert_dispatcher.adapters.privacy import AlertPrivacy
from services.alert_dispatcher.bootstrap import bootstrap
from services.alert_dispatcher.ports import NewAlert
from shared import privacy_requests
from shared.contracts import PrivacyRequest, topics
from shared.privacy import hash_secret, subject_hashes
from shared.received import Received, Trace
from shared.settings import Settings
from tests.component.alert_dispatcher.conftest import (
    alerts_to,
    confirmations,
    confirmations_to,
    flow,
    link_in,
    outcome_of,
    request,
    save_flow,
)
from tests.component.repository_backends import migrated_database
from tests.conftest import eventually


async def test_i1_one_opt_in_for_every_spelling_of_a_recipient(dispatcher, kafka, api, acct):
    local = f"Lead-{acct}"
    nfc = f"{local}@Bücher.de"
    nfd = unicodedata.normalize("NFD", f"{local.upper()}@BÜCHER.DE")
    puny = f" {local.lower()}@xn--bcher-kva.de "
    written = f"{local}@xn--bcher-kva.de"  # as written, domain in IDNA form
    await save_flow(kafka, flow(acct, "nps", [nfc, nfd]))
    (mail,) = await confirmations(dispatcher, written)
    assert str(mail["To"]) == written
    assert (await api.post(link_in(mail, "confirm"))).status_code == 200
    # Listed under another spelling in another flow: confirmed, so not asked again.
    await save_flow(kafka, flow(acct, "other", [puny]))
    first = request(acct, [nfd])
    await kafka.send(topics.ALERT_REQUESTS, first.profile_id, first)
    assert (await outcome_of(kafka, acct, first.alert_id))["type"] == "sent"

    async def mailed() -> list:
        return alerts_to(dispatcher, written)

    alerts = await eventually(mailed, 20)
    assert len(confirmations_to(dispatcher, written)) == 1
    assert {str(m["To"]) for m in alerts} == {f"{local.upper()}@xn--bcher-kva.de"}
    # Unsubscribed through the mail sent to one spelling: no mail under any other.
    assert (await api.post(link_in(alerts[0], "unsubscribe"))).status_code == 200
    second = request(acct, [puny], flow_id="other")
    await kafka.send(topics.ALERT_REQUESTS, second.profile_id, second)
    outcome = await outcome_of(kafka, acct, second.alert_id)
    assert outcome["type"] == "skipped" and outcome["reason"] == "Skipped: no confirmed recipients"


SETTINGS = Settings(privacy_hash_secret="component-test-hash-secret-of-32-bytes!")


def _legacy(secret: str, email: str) -> str:
    """The hash an alert carried before the normal form: of the spelling, case-folded."""
    norm = email.strip().casefold()
    return hmac.new(secret.encode(), f"email:{norm}".encode(), hashlib.sha256).hexdigest()


async def test_p1_p2_alerts_are_found_and_erased_by_any_spelling(stack) -> None:
    secret = hash_secret(SETTINGS)
    nfd = unicodedata.normalize("NFD", "Ada@Bücher.de")
    stored = {
        "al-now": subject_hashes(secret, nfd, "+12125550142"),
        "al-old": [_legacy(secret, nfd)],  # stored before I1's normal form
        "al-other": subject_hashes(secret, "ada@example.test", "+12125550143"),
    }
    privacy = AlertPrivacy(SETTINGS)
    async with migrated_database(stack.dsn, "alert_dispatcher") as db:
        async with db.uow() as uow:
            await bootstrap(SETTINGS)(uow).alerts.add(
                [
                    NewAlert(a, "acme", "nps", 1, "alert", f"p-{a}", datetime.now(UTC), h)
                    for a, h in stored.items()
                ]
            )
            await uow.commit()
        async with db.pool.acquire() as conn:
            for spelling in ("Ada@Bücher.de", "ADA@xn--bcher-kva.de", " ada@BÜCHER.DE ", nfd):
                got = await privacy.resolve(conn, _request("export", email=spelling))
                assert got == ["p-al-now", "p-al-old"], spelling
            for spelling in ("+1 (212) 555-0142", "+1-212-555-0142"):
                got = await privacy.resolve(conn, _request("export", phone_number=spelling))
                assert got == ["p-al-now"], spelling
            request = _request("erase", email="ada@xn--bcher-kva.de")
            await privacy.erase(conn, request, await privacy.resolve(conn, request))
            rows = await conn.fetch("SELECT alert_id, status FROM alerts ORDER BY alert_id")
    assert {r["alert_id"]: r["status"] for r in rows} == {
        "al-now": "skipped",
        "al-old": "skipped",
        "al-other": "sending",
    }


def _request(action: str, **named: str) -> PrivacyRequest:
    return PrivacyRequest.model_validate(
        {
            "request_id": uuid.uuid4().hex,
            "account_id": "acme",
            "action": action,
            "requested_at": datetime.now(UTC),
            **named,
        }
    )


async def test_p1_p2_a_privacy_request_is_answered_through_the_dispatchers_work(stack) -> None:
    """The `privacy-requests` subscriber's path on PostgreSQL: the same work as every
    other use case of the dispatcher, its privacy SQL and outbox on one transaction."""
    secret = hash_secret(SETTINGS)
    async with migrated_database(stack.dsn, "alert_dispatcher") as db:
        async with db.uow() as uow:
            work = bootstrap(SETTINGS)(uow)
            await work.alerts.add(
                [
                    NewAlert(
                        "al-1", "acme", "nps", 1, "alert", "p-1", datetime.now(UTC),
                        subject_hashes(secret, "Ada@Example.test", None),
                    )
                ]
            )  # fmt: skip
            erase = _request("erase", email="ada@example.test")
            await privacy_requests.handle([Received(erase, None, Trace("c-1"))], work)  # type: ignore[arg-type]
            published = [(topic, key) for topic, key, _, _ in uow._outbox]
            await uow.commit()
        async with db.pool.acquire() as conn:
            status = await conn.fetchval("SELECT status FROM alerts WHERE alert_id = 'al-1'")
    assert published == [(topics.PRIVACY_RESULTS, erase.request_id.encode())]
    assert status == "skipped"
