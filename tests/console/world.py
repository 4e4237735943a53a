"""The account the console tests look at, built through the product's own inputs (topics,
the recipients' links, the services' APIs): three flows, alert recipients in every
status, a person who opted out, and alerts held, sent and skipped."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.contracts import topics
from tests.conftest import Kafka, eventually, mail_to

BRAND = "Alpenglow Outfitters"
LINK = re.compile(r"https?://\S+/links/\S+")


@dataclass
class World:
    account: str
    key: str
    lead: str
    gone: str
    ops: str
    nobody: str
    email: str
    profile: str
    phone: str
    held: dict[str, str] = field(default_factory=dict)  # profile id -> held alert id
    run: str = ""
    skipped_alert: str = ""  # a night-desk alert: no confirmed recipients
    sent_alert: str = ""  # the churn alert the former colleague received


def _link(mail: Any, path: str) -> str:
    text = mail.get_body(("plain",)).get_content()
    return next(u for u in LINK.findall(text) if path in u)


async def api(stack: Any, key: str, service: str, method: str, path: str, body: Any = None):
    async with httpx.AsyncClient(base_url=stack.services[service].base_url) as c:
        r = await c.request(
            method, path, json=body, headers={"authorization": f"Bearer {key}"}, timeout=10
        )
        return r.status_code, (r.json() if r.content else None)


def _alert_step(step_id: str, mode: str, recipients: list[str]) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "internal_alert",
        "mode": mode,
        "recipients": recipients,
        "from_email": "alerts@alpenglow.test",
        "from_name": "Alpenglow alerts",
        "subject": "Detractor: {{ person.email }}",
        "body": "{{ person.first_name }} scored {{ event.score }}",
        "next": None,
    }


def _flow(account: str, flow_id: str, name: str, metric: str, step: dict) -> dict[str, Any]:
    return {
        "account_id": account,
        "flow_id": flow_id,
        "version": 1,
        "name": name,
        "trigger": {"type": "metric", "metric": metric},
        "steps": [step],
    }


def _event(account: str, pid: str, email: str, metric: str, first: str) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "account_id": account,
        "metric": metric,
        "profile": {"id": pid, "email": email, "first_name": first},
        "properties": {"score": 3},
        "time": datetime.now(UTC).isoformat(),
    }


def _consent(
    account: str,
    pid: str,
    email: str,
    action: str,
    method: str,
    scope: dict | None = None,
    phone: str | None = None,
) -> dict[str, Any]:
    profile = {"id": pid, "email": email, "first_name": "Ada"}
    return {
        **({"scope": scope} if scope else {}),
        "command_id": uuid.uuid4().hex,
        "account_id": account,
        "profile": {**profile, **({"phone_number": phone} if phone else {})},
        "action": action,
        "channel": "email",
        "method": method,
        "consented_at": datetime.now(UTC).isoformat(),
    }


async def _confirm(stack: Any, address: str) -> None:
    mails = await eventually(lambda: _mails(stack, address), timeout_s=30)
    async with httpx.AsyncClient() as c:
        r = await c.post(_link(mails[0], "/links/recipients/confirm"), data={"action": "confirm"})
        assert r.status_code == 200, r.text


async def _mails(stack: Any, address: str, n: int = 1) -> list[Any]:
    got = mail_to(stack, address)
    return got if len(got) >= n else []


async def build(stack: Any, kafka: Kafka, account: str, key: str) -> World:
    run = account.rsplit("-", 1)[-1]
    w = World(
        account=account,
        key=key,
        lead=f"cx-lead-{run}@alpenglow.test",
        gone=f"former-{run}@alpenglow.test",
        ops=f"ops-{run}@alpenglow.test",
        nobody=f"nightshift-{run}@alpenglow.test",
        email=f"ada.lovelace.{run}@example.com",
        profile=f"ada-{run}",
        phone=f"+1212555{int(run, 16) % 10_000:04d}",
        run=run,
    )
    status, _ = await api(
        stack,
        key,
        "consent",
        "PUT",
        f"/accounts/{account}/consent/settings",
        {"display_name": BRAND, "accent_colour": "#0b6e4f", "email_double_opt_in": False},
    )
    assert status == 200
    nps = _alert_step("review", "manual", [w.lead, w.gone, w.ops])
    vip = _alert_step("night", "live", [w.nobody])
    churn = _alert_step("churn-alert", "live", [w.gone])
    flows = [
        _flow(account, "nps", "NPS detractors", "Left NPS Score", nps),
        _flow(account, "night-desk", "Night desk", "Left NPS Score", vip),
        _flow(account, "churn", "Cancellations", "Cancelled Subscription", churn),
    ]
    for f in flows[:2]:
        await kafka.send(topics.FLOW_DEFINITIONS, f"{account}:{f['flow_id']}", f)
    await _confirm(stack, w.lead)
    await _confirm(stack, w.gone)
    # Saved once `gone` confirmed: a confirmed recipient is not asked again (A3).
    await kafka.send(topics.FLOW_DEFINITIONS, f"{account}:churn", flows[2])
    # Ada subscribed through a form, then left through a link: an opt-out (C11).
    for action, method in (("subscribe", "form"), ("unsubscribe", "link")):
        cmd = _consent(account, w.profile, w.email, action, method, phone=w.phone)
        await kafka.send(topics.CONSENT_COMMANDS, w.profile, cmd)

        async def applied(want: str = action) -> bool:
            path = f"/accounts/{account}/profiles/{w.profile}/consent"
            code, body = await api(stack, key, "consent", "GET", path)
            status = body["channels"]["email"]["status"] if code == 200 else None
            return status == f"{want}d"

        await eventually(applied, timeout_s=30)
    # Opt-outs at each level (C10): Eve from the group, Bob from one store, Cyd from one
    # of its senders.
    scoped = {
        f"eve-{run}": None,
        f"bob-{run}": {"level": "client", "client_id": "Boulder store"},
        f"cyd-{run}": {"level": "user", "client_id": "Boulder store", "user_id": "Sam"},
    }
    for pid, scope in scoped.items():
        email = f"{pid.split('-')[0]}.{run}@example.com"
        cmd = _consent(account, pid, email, "unsubscribe", "preference_center", scope)
        await kafka.send(topics.CONSENT_COMMANDS, pid, cmd)

    async def opted_out() -> bool:
        path = f"/accounts/{account}/opt-outs"
        _, body = await api(stack, key, "consent", "GET", path)
        return {o["profile_id"] for o in body["opt_outs"]} >= set(scoped)

    await eventually(opted_out, timeout_s=30)
    # Former colleague: gets one alert, then stops alerts with the mail's link (A4).
    dan = f"dan-{run}"
    cancel = _event(account, dan, f"dan.{run}@example.com", "Cancelled Subscription", "Dan")
    await kafka.send(topics.PROFILE_EVENTS, dan, cancel)
    alert_mail = (await eventually(lambda: _mails(stack, w.gone, 2), timeout_s=30))[-1]
    async with httpx.AsyncClient() as c:
        r = await c.post(
            _link(alert_mail, "/links/recipients/unsubscribe"), data={"action": "unsubscribe"}
        )
        assert r.status_code == 200, r.text
    # Three detractors: three alerts held for review, and three skipped on the night desk.
    people = {w.profile: (w.email, "Ada"), f"bob-{run}": (f"bob.{run}@example.com", "Bob")}
    people[f"cyd-{run}"] = (f"cyd.{run}@example.com", "Cyd")
    for pid, (email, first) in people.items():
        await kafka.send(
            topics.PROFILE_EVENTS, pid, _event(account, pid, email, "Left NPS Score", first)
        )

    async def held() -> dict[str, str]:
        _, body = await api(stack, key, "flow_executor", "GET", f"/accounts/{account}/reviews")
        got = {h["profile_id"]: h["alert_id"] for h in body["in_review"]}
        return got if len(got) == 3 else {}

    w.held = await eventually(held, timeout_s=30)

    async def settled() -> bool:
        _, rec = await api(
            stack, key, "alert_dispatcher", "GET", f"/accounts/{account}/alert-recipients"
        )
        statuses = {r["email"]: r["status"] for r in rec["recipients"]}
        _, night = await api(
            stack, key, "alert_dispatcher", "GET", f"/accounts/{account}/alerts/night-desk/night"
        )
        return statuses.get(w.gone) == "disabled" and night["totals"].get("skipped") == 3

    await eventually(settled, timeout_s=30)
    # A command its contract refuses (X1): dead-lettered with the reason.
    broken = {**_consent(account, w.profile, w.email, "subscribe", "form"), "action": "teleport"}
    await kafka.send(topics.CONSENT_COMMANDS, w.profile, broken)

    async def dead() -> bool:
        path = f"/accounts/{account}/dead-letters/consent-commands"
        code, body = await api(stack, key, "consent", "GET", path)
        return code == 200 and len(body["dead_letters"]) == 1

    await eventually(dead, timeout_s=30, interval_s=0.5)
    base = f"/accounts/{account}/alerts"
    _, night = await api(stack, key, "alert_dispatcher", "GET", f"{base}/night-desk/night")
    _, churn = await api(stack, key, "alert_dispatcher", "GET", f"{base}/churn/churn-alert")
    w.skipped_alert = night["alerts"][0]["alert_id"]
    w.sent_alert = next(a["alert_id"] for a in churn["alerts"] if a["status"] == "sent")
    return w
