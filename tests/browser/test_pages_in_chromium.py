"""Every link in every mail the product sends, opened and acted on in Chromium as a
person would (W1, W2, W3, C12, A4): the page's button is pressed, the result is checked
over the API, in English and German, on a desktop and a 375-px phone, and axe-core finds
no serious or critical accessibility violation on any page or mail."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.contracts import AlertContent, AlertRequested, Profile, topics
from tests.browser.conftest import AXE, headers
from tests.conftest import Kafka, eventually, mail_to

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
SHOTS = os.environ.get("SCREENSHOTS")
# Every page in English on a desktop and in German on a phone; for the screenshots also
# the other two combinations.
VARIANTS = {
    "en-desktop": ("en-GB", DESKTOP),
    "de-phone": ("de-DE", PHONE),
    **({"en-phone": ("en-GB", PHONE), "de-desktop": ("de-DE", DESKTOP)} if SHOTS else {}),
}
LINK = re.compile(r"https?://\S+/links/\S+")


def _link(mail: Any, path: str) -> str:
    text = mail.get_body(("plain",)).get_content()
    return next(u for u in LINK.findall(text) if path in u)


async def _mails(stack: Any, to: str, n: int = 1) -> list[Any]:
    async def probe() -> list[Any]:
        got = mail_to(stack, to)
        return got if len(got) >= n else []

    return await eventually(probe, timeout_s=30)


async def _axe(page: Any, what: str) -> None:
    """No serious or critical violation of WCAG 2.1 A/AA (W1)."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values:"
        " ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{what}: {bad}"


async def _fits(page: Any, what: str) -> None:
    """Nothing wider than the viewport: readable on a phone without sideways scrolling."""
    wide = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert wide <= 0, f"{what} scrolls sideways by {wide}px"


async def _shot(page: Any, name: str) -> None:
    if SHOTS:  # the folder is made by the `browser` fixture
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


async def look(browser: Any, url: str, name: str, want: dict[str, str]) -> None:
    """Open `url` (GET only: it changes nothing) in every language and viewport; check the
    words `want[lang]`, the phone fit and axe; keep screenshots when asked."""
    for variant, (locale, viewport) in VARIANTS.items():
        context = await browser.new_context(locale=locale, viewport=viewport)
        try:
            page = await context.new_page()
            await page.goto(url)
            lang = locale[:2]
            assert await page.get_attribute("html", "lang") == lang
            assert want[lang] in await page.inner_text("body"), (name, variant)
            await _axe(page, f"{name} {variant}")
            await _fits(page, f"{name} {variant}")
            await _shot(page, f"{name}-{variant}")
        finally:
            await context.close()


async def open_mail(browser: Any, mail: Any, name: str, locale: str = "en-GB") -> Any:
    """The mail's HTML part in a page (phone width), checked with axe; returns the page."""
    context = await browser.new_context(locale=locale, viewport=PHONE)
    page = await context.new_page()
    await page.set_content(mail.get_body(("html",)).get_content())
    await _axe(page, f"mail {name}")
    await _fits(page, f"mail {name}")
    await _shot(page, f"mail-{name}")
    return page


async def _state(stack: Any, account: str, profile_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.services["consent"].base_url) as c:
        r = await c.get(
            f"/accounts/{account}/profiles/{profile_id}/consent", headers=headers(account)
        )
        return r.json() if r.status_code == 200 else {}


async def _settings(stack: Any, account: str, **values: Any) -> None:
    async with httpx.AsyncClient(base_url=stack.services["consent"].base_url) as c:
        r = await c.put(
            f"/accounts/{account}/consent/settings", json=values, headers=headers(account)
        )
        assert r.status_code == 200, r.text


def _command(account: str, pid: str, **kw: Any) -> dict[str, Any]:
    profile = {"id": pid, "email": f"{pid}@example.test"}
    if "phone" in kw:
        profile["phone_number"] = kw.pop("phone")
    return {
        "command_id": uuid.uuid4().hex,
        "account_id": account,
        "profile": profile,
        "action": "subscribe",
        "channel": kw.pop("channel", "email"),
        "consented_at": "2026-11-24T10:00:00+00:00",
        **kw,
    }


async def test_w1_w3_c8_c12_double_opt_in_from_the_mail_to_confirmed(
    services, browser, kafka: Kafka, acct: str
) -> None:
    await _settings(
        services,
        acct,
        display_name="Acme Outdoor",
        accent_colour="#0b6e4f",
        support_email="help@acme.test",
        list_names={"trail": "Trail news"},
    )
    pid = f"p-{uuid.uuid4().hex[:8]}"
    await kafka.send(
        topics.CONSENT_COMMANDS, pid, _command(acct, pid, method="form", list_id="trail")
    )
    (mail,) = await _mails(services, f"{pid}@example.test")
    page = await open_mail(browser, mail, "double-opt-in")
    confirm = _link(mail, "/links/consent/confirm")
    await look(browser, confirm, "confirm", {"en": "Yes, subscribe me", "de": "Ja, anmelden"})
    assert (await _state(services, acct, pid))["channels"]["email"]["status"] == "never_subscribed"
    # The person: taps the mail's button, then the page's button.
    await page.click("text=Confirm subscription")
    await page.wait_for_url(re.compile("/links/consent/confirm"))
    assert "Trail news" in await page.inner_text("body")
    await page.click("button:has-text('Yes, subscribe me')")
    await page.wait_for_selector("text=Subscription confirmed")
    await _axe(page, "confirmed")
    await _shot(page, "confirmed-en-phone")
    await page.context.close()

    async def subscribed() -> bool:
        s = await _state(services, acct, pid)
        return s["channels"]["email"]["status"] == "subscribed" and s["lists"] == {
            "trail": "subscribed"
        }

    assert await eventually(subscribed, timeout_s=20)
    await look(
        browser,
        confirm,
        "already-confirmed",
        {"en": "Already confirmed", "de": "Bereits bestätigt"},
    )
    broken = confirm.split("?")[0] + "?token=" + confirm.split("token=")[1][:-3] + "AAA"
    await look(
        browser,
        broken,
        "invalid-link",
        {"en": "This link does not work", "de": "Dieser Link funktioniert nicht"},
    )
    conn = await asyncpg.connect(services.dsn, server_settings={"search_path": "consent"})
    try:
        await conn.execute(
            "UPDATE confirmations SET confirmed_at = NULL,"
            " requested_at = requested_at - interval '15 days'"
            " WHERE account_id = $1 AND profile_id = $2",
            acct,
            pid,
        )
    finally:
        await conn.close()
    await look(
        browser, confirm, "expired-link", {"en": "Send me a new email", "de": "Neue E-Mail senden"}
    )


async def test_w2_w3_preference_centre_in_german_on_a_phone_from_the_opt_out_mail(
    services, browser, kafka: Kafka, acct: str
) -> None:
    await _settings(
        services,
        acct,
        email_double_opt_in=False,
        optout_confirmation_email=True,
        display_name="Kaffeehaus Müller",
        accent_colour="#8a3b12",
        list_names={"beans": "Bohnen des Monats", "events": "Veranstaltungen"},
    )
    pid = f"p-{uuid.uuid4().hex[:8]}"
    await kafka.send(topics.CONSENT_COMMANDS, pid, _command(acct, pid, list_id="beans"))
    await kafka.send(
        topics.CONSENT_COMMANDS, pid, _command(acct, pid, channel="sms", phone="+4915112345678")
    )

    async def ready() -> bool:
        s = await _state(services, acct, pid)
        return (
            bool(s)
            and s["channels"]["sms_marketing"]["status"] == "subscribed"
            and s["lists"] == {"beans": "subscribed"}
        )

    await eventually(ready, timeout_s=20)
    async with httpx.AsyncClient(base_url=services.services["consent"].base_url) as c:
        links = (
            await c.get(
                f"/accounts/{acct}/profiles/{pid}/links",
                params={"client_id": "Filiale Mitte", "user_id": "Anna"},
                headers=headers(acct),
            )
        ).json()
    await look(
        browser,
        links["unsubscribe_url"],
        "unsubscribe",
        {"en": "Stop receiving email from Kaffeehaus Müller?", "de": "Keine E-Mails mehr"},
    )
    await look(
        browser,
        links["preferences_url"],
        "preferences",
        {"en": "Stop email from Anna only", "de": "Nur E-Mails von Anna abbestellen"},
    )
    # The one-click unsubscribe of a mail client; the account confirms it by mail.
    async with httpx.AsyncClient() as c:
        r = await c.post(links["unsubscribe_url"], content="List-Unsubscribe=One-Click")
        assert r.status_code == 200
    (mail,) = await _mails(services, f"{pid}@example.test")
    page = await open_mail(browser, mail, "opt-out-confirmation")
    await page.close()
    await page.context.close()
    back = _link(mail, "/links/consent/preferences")

    context = await browser.new_context(locale="de-DE", viewport=PHONE)
    page = await context.new_page()
    await page.goto(back)
    assert await page.get_attribute("html", "lang") == "de"
    body = await page.inner_text("body")
    assert "Abgemeldet" in body and "Bohnen des Monats" in body and "Werbe-SMS" in body
    await page.get_by_label("E-Mails an mich senden").check()
    await page.get_by_label("Veranstaltungen").check()
    await page.get_by_label("Bohnen des Monats").uncheck()
    await page.get_by_label("Werbe-SMS").uncheck()
    await page.click("button:has-text('Auswahl speichern')")
    await page.wait_for_selector("text=Das hat sich geändert")
    saved = await page.inner_text("body")
    for change in (
        "E-Mail: jetzt Angemeldet",
        "Liste „Veranstaltungen“: jetzt Angemeldet",
        "Liste „Bohnen des Monats“: jetzt Abgemeldet",
        "Werbe-SMS: jetzt Abgemeldet",
    ):
        assert change in saved, change
    await _axe(page, "preferences saved")
    await _fits(page, "preferences saved")
    await _shot(page, "preferences-saved-de-phone")
    # The preference link of a mail sent for one sender offers that sender's level.
    await page.goto(links["preferences_url"])
    await page.get_by_label("Nur E-Mails von Anna abbestellen").check()
    await page.click("button:has-text('Auswahl speichern')")
    await page.wait_for_selector("text=E-Mail von Anna: jetzt Abgemeldet")
    await context.close()
    state = await _state(services, acct, pid)
    assert state["channels"]["email"]["status"] == "subscribed"
    assert state["opt_outs"] == ["user:Filiale Mitte/Anna"]
    assert state["lists"] == {"beans": "unsubscribed", "events": "subscribed"}
    assert state["channels"]["sms_marketing"]["status"] == "unsubscribed"
    assert state["channels"]["sms_transactional"]["status"] == "unsubscribed"


async def test_w1_a4_alert_recipient_confirms_and_stops_alerts_from_the_mails(
    services, browser, kafka: Kafka, acct: str
) -> None:
    base = services.services["alert_dispatcher"].base_url
    lead = f"lead-{acct}@acme.test"
    flow = {
        "account_id": acct,
        "flow_id": "nps",
        "version": 1,
        "name": "NPS detractors",
        "trigger": {"type": "metric", "metric": "Left NPS Score"},
        "steps": [
            {
                "id": "alert",
                "type": "internal_alert",
                "mode": "live",
                "recipients": [lead],
                "from_email": "alerts@acme.test",
                "subject": "Detractor: {{ person.email }}",
                "body": "{{ person.first_name }} scored {{ event.score }}",
                "next": None,
            }
        ],
    }
    await kafka.send(topics.FLOW_DEFINITIONS, f"{acct}:nps", flow)
    (mail,) = await _mails(services, lead)
    page = await open_mail(browser, mail, "alert-recipient-confirmation")
    confirm = _link(mail, "/links/recipients/confirm")
    await look(
        browser,
        confirm,
        "alert-confirm",
        {"en": "Confirm alerts", "de": "Benachrichtigungen bestätigen"},
    )

    async def status() -> str | None:
        async with httpx.AsyncClient(base_url=base) as c:
            r = await c.get(f"/accounts/{acct}/alert-recipients", headers=headers(acct))
            return {x["email"]: x["status"] for x in r.json()["recipients"]}.get(lead)

    assert await status() == "unconfirmed"
    await page.click("text=Confirm alerts")
    await page.wait_for_url(re.compile("/links/recipients/confirm"))
    await page.click("button:has-text('Confirm alerts')")
    await page.wait_for_selector("text=Alerts confirmed")
    await page.context.close()
    assert await status() == "confirmed"

    pid = f"p-{uuid.uuid4().hex[:8]}"
    req = AlertRequested(
        alert_id=f"al-{uuid.uuid4().hex}",
        account_id=acct,
        flow_id="nps",
        flow_version=1,
        step_id="alert",
        profile_id=pid,
        profile=Profile(id=pid, email=f"{pid}@example.com", first_name="Ada"),
        event={"score": 3},
        action=AlertContent(
            recipients=[lead],
            from_email="alerts@acme.test",
            subject="Detractor: {{ person.email }}",
            body="{{ person.first_name }} scored {{ event.score }}",
        ),
        trigger_type="metric",
    )
    await kafka.send(topics.ALERT_REQUESTS, pid, req)
    _, alert = await _mails(services, lead, 2)
    unsubscribe = _link(alert, "/links/recipients/unsubscribe")
    await look(
        browser,
        unsubscribe,
        "alert-stop",
        {"en": "Stop receiving internal alerts", "de": "Keine internen Benachrichtigungen"},
    )
    context = await browser.new_context(locale="en-GB", viewport=PHONE)
    page = await context.new_page()
    await page.goto(unsubscribe)
    await page.keyboard.press("Tab")  # keyboard only: the button takes the focus
    focused = await page.evaluate("() => document.activeElement.textContent")
    assert focused == "Stop alerts"
    await page.keyboard.press("Enter")
    await page.wait_for_selector("text=Alerts stopped")
    await context.close()
    assert await status() == "disabled"
