"""The operator console in Debian's Chromium against the real stack (W4–W6): an operator
signs in with the account's key, finds a person by an upper-case spelling of their
address, reads consent and history, is refused a re-subscribe without evidence with the
API's C11 reason and has it applied with evidence; opens a flow's alert and sees each
recipient's status, approves a held alert and sees it sent, sees a skipped alert's
reason, and signs out. Forged and cross-account requests change nothing. axe-core finds
no WCAG 2.1 A/AA violation on any screen, on a desktop and a phone, in English and
German, and sign-in and an approval work from the keyboard alone.

`SCREENSHOTS=docs/screenshots python -m pytest tests/console` regenerates
docs/screenshots/console-*.png."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.browser.conftest import AXE
from tests.conftest import eventually
from tests.console.world import BRAND, World, api, build

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
SHOTS = os.environ.get("SCREENSHOTS")
OPERATOR = "Maria Operator"


@pytest.fixture(scope="module")
async def world(services, kafka, accounts) -> World:
    return await build(services, kafka, accounts.ours, accounts.key)


async def axe(page: Any, what: str) -> None:
    """No violation of WCAG 2.1 A/AA at all (W6)."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values:"
        " ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
    ]
    assert not bad, f"{what}: {bad}"


async def fits(page: Any, what: str) -> None:
    wide = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert wide <= 0, f"{what} scrolls sideways by {wide}px"


async def shot(page: Any, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"), full_page=True)


async def new_page(browser: Any, locale: str = "en-GB", viewport: dict | None = None) -> Any:
    # The console's Content-Security-Policy allows no inline script: axe-core is injected
    # as one, so the browser is told to let it in.
    context = await browser.new_context(
        locale=locale, viewport=viewport or DESKTOP, timezone_id="America/Chicago", bypass_csp=True
    )
    return await context.new_page()


async def sign_in(page: Any, console: Any, account: str, key: str, name: str = OPERATOR) -> None:
    await page.goto(console.base_url + "/sign-in")
    await page.fill("#account", account)
    await page.fill("#key", key)
    await page.fill("#name", name)
    await page.click("form.stack button[type=submit]")
    await page.wait_for_url(re.compile(r"/flows$"))


async def consent_status(services: Any, w: World) -> str:
    path = f"/accounts/{w.account}/profiles/{w.profile}/consent"
    _, body = await api(services, w.key, "consent", "GET", path)
    return body["channels"]["email"]["status"]


async def in_review(services: Any, w: World) -> set[str]:
    path = f"/accounts/{w.account}/reviews"
    _, body = await api(services, w.key, "flow_executor", "GET", path)
    return {h["alert_id"] for h in body["in_review"]}


async def test_w4_w5_c11_profile_by_upper_case_email_consent_history_and_resubscribe(
    console, browser, world: World, services
) -> None:
    page = await new_page(browser)
    await sign_in(page, console, world.account, world.key)
    assert BRAND in await page.inner_text("header")
    await page.click("nav >> text=Profiles")
    await page.fill("#q", world.email.upper())
    await page.press("#q", "Enter")
    await page.wait_for_url(re.compile(f"/profiles/{world.profile}$"))
    consent = await page.inner_text("#consent + .table-wrap")
    assert "Email marketing" in consent and "Unsubscribed" in consent
    # The same person by another spelling of her number (I1).
    spelled = f"+1 ({world.phone[2:5]}) {world.phone[5:8]}-{world.phone[8:]}"
    await page.goto(f"{console.base_url}/profiles?q={quote(spelled, safe='')}")
    await page.wait_for_url(re.compile(f"/profiles/{world.profile}$"))
    history = await page.inner_text("#history + .table-wrap")
    assert "Signup form" in history and "Link in a mail" in history

    # C11: back in after an opt-out only with evidence; the API's reason is shown.
    await page.select_option("#c-action", "resubscribe")
    await page.select_option("#c-channel", "email")
    await page.click("text=Apply change")
    refusal = await page.inner_text("#refusal")
    assert "Refused: nothing was changed." in refusal and "evidence" in refusal, refusal
    await shot(page, "profile-refused-en-desktop")
    assert await consent_status(services, world) == "unsubscribed"

    await page.fill("#c-evidence", "Signed paper form 2026-12-01, ref AO-1138")
    await page.click("text=Apply change")
    await page.wait_for_selector("text=Accepted. The change is applied")

    async def back_in() -> bool:
        return await consent_status(services, world) == "subscribed"

    await eventually(back_in, timeout_s=30)
    await page.reload()
    assert "Subscribed" in await page.inner_text("#consent + .table-wrap")
    history = await page.inner_text("#history + .table-wrap")
    assert f"{OPERATOR} via api-key:{world.account}/" in history  # C2: by whom
    assert "AO-1138" in history
    await page.click("text=Sign out")
    await page.wait_for_url(re.compile("/sign-in"))
    await page.context.close()


async def test_w5_flow_alert_recipients_approval_sent_and_skipped_reason(
    console, browser, world: World, services
) -> None:
    page = await new_page(browser)
    await sign_in(page, console, world.account, world.key)
    await page.click("text=NPS detractors")
    await page.wait_for_url(re.compile("/flows/nps$"))
    # "Sent to": each recipient's icon and words (A4, W5).
    for email, status, icon in (
        (world.lead, "Confirmed", "check"),
        (world.gone, "Disabled", "cross"),
        (world.ops, "Unconfirmed", "dotted"),
    ):
        row = page.locator(".recipients li", has_text=email)
        assert status in await row.inner_text()
        assert await row.locator(f".icon.{icon}").count() == 1
    # Ask the unconfirmed one again (A4).
    before = len([m for m in services.smtp.messages() if world.ops in str(m["To"])])
    await page.click(f"text=Ask {world.ops} again")
    await page.wait_for_selector(f"text=A new confirmation mail is on its way to {world.ops}")

    async def asked() -> bool:
        return len([m for m in services.smtp.messages() if world.ops in str(m["To"])]) > before

    await eventually(asked, timeout_s=30)

    # The alert action: held alerts, approve one, see it sent.
    await page.click("text=View details")
    await page.wait_for_url(re.compile("/flows/nps/alerts/review"))
    assert "In review" in await page.inner_text(".tiles")
    alert_id = world.held[world.profile]
    await page.click(f"[aria-label='Approve alert {alert_id}']")
    await page.wait_for_selector(f"text=Approved: alert {alert_id}")
    alert_url = f"{console.base_url}/flows/nps/alerts/review/{quote(alert_id, safe='')}"

    async def sent() -> bool:
        await page.goto(alert_url)
        return "Sent" in await page.inner_text("dl.facts")

    await eventually(sent, timeout_s=30, interval_s=0.5)
    rows = page.locator(".table-wrap tbody tr")
    assert "Sent" in await rows.filter(has_text=world.lead).inner_text()
    assert "Skipped" in await rows.filter(has_text=world.gone).inner_text()
    await page.click(f"dl.facts >> text={world.profile}")  # alert → profile
    await page.wait_for_url(re.compile(f"/profiles/{world.profile}"))
    assert "nps › review" in await page.inner_text("#alerts ~ ul")  # and back

    # Opt-outs by level (C10), as Concep's activity view lists them.
    await page.click("nav >> text=Opt-outs")
    levels = page.get_by_role("navigation", name="Levels")
    await levels.get_by_role("link", name="Client", exact=True).click()
    await page.wait_for_url(re.compile("level=client"))
    rows = await page.inner_text("main table")
    assert f"bob-{world.run}" in rows and "Boulder store" in rows
    assert f"cyd-{world.run}" not in rows and f"eve-{world.run}" not in rows
    await levels.get_by_role("link", name="User", exact=True).click()
    await page.wait_for_url(re.compile("level=user"))
    assert "Sam" in await page.inner_text("main table")
    await levels.get_by_role("link", name="Group", exact=True).click()
    await page.wait_for_url(re.compile("level=group"))
    assert f"eve-{world.run}" in await page.inner_text("main table")

    # A skipped alert and its reason (A5).
    await page.goto(console.base_url + "/flows/night-desk/alerts/night?status=skipped")
    body = await page.inner_text("main")
    assert "Skipped: no confirmed recipients" in body
    await page.click("text=Sign out")
    await page.context.close()


async def test_w5_x1_dead_letters_with_their_reasons_and_replay(
    console, browser, world: World, accounts, services
) -> None:
    page = await new_page(browser)
    await sign_in(page, console, world.account, world.key)
    await page.click("nav >> text=Dead letters")
    await page.click("main >> text=consent-commands")
    await page.wait_for_url(re.compile("/dead-letters/consent-commands$"))
    table = await page.inner_text("main table")
    assert "teleport" in table and "action" in table  # the message and the reason
    await page.click("text=Replay 1 dead letter")
    await page.wait_for_selector("text=Replayed 1 dead letters to their topic")

    async def failed_again() -> bool:  # the same message, refused again: a new letter
        path = f"/accounts/{world.account}/dead-letters/consent-commands"
        _, body = await api(services, world.key, "consent", "GET", path)
        return [x["replayed"] for x in body["dead_letters"]] == [True, False]

    await eventually(failed_again, timeout_s=30, interval_s=0.5)
    await page.context.close()
    # Another account sees none of them.
    other = await new_page(browser)
    await sign_in(other, console, accounts.theirs, accounts.their_key)
    await other.goto(console.base_url + "/dead-letters/consent-commands")
    assert "No dead letter" in await other.inner_text("main")
    await other.context.close()


def _cookie(jar: list[dict[str, Any]], name: str) -> str:
    return next(c["value"] for c in jar if c["name"] == name)


async def test_w4_forged_and_cross_account_requests_change_nothing(
    console, browser, world: World, accounts, services
) -> None:
    target = world.held[f"cyd-{world.run}"]
    approve = f"/reviews/{quote(target, safe='')}/approve"
    # The session cookie: HttpOnly, SameSite=Strict (Secure is off on loopback only).
    page = await new_page(browser)
    await sign_in(page, console, world.account, world.key)
    jar = await page.context.cookies()
    cookie = next(c for c in jar if c["name"] == "consentflow_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    csrf = await page.get_attribute("form.signout input[name=csrf]", "value")
    ours = {"consentflow_console": cookie["value"]}
    async with httpx.AsyncClient(base_url=console.base_url, timeout=30) as c:
        # No CSRF token, or another one: refused, nothing changes.
        r = await c.post(approve, cookies=ours, data={})
        assert r.status_code == 403
        r = await c.post(approve, cookies=ours, data={"csrf": "forged" + (csrf or "")})
        assert r.status_code == 403
        # Another account's key with our account: a plain error, after a delay.
        start = time.monotonic()
        signin = await c.get("/sign-in")
        token = re.search(r'name="signin" value="([^"]+)"', signin.text).group(1)
        r = await c.post(
            "/sign-in",
            data={"signin": token, "account": world.account, "key": accounts.their_key},
        )
        assert r.status_code == 401 and "do not match" in r.text
        assert time.monotonic() - start >= 0.4
        assert "consentflow_console=" not in r.headers.get("set-cookie", "")
    # Signed in as the other account: our data is not there (the API's 404).
    other = await new_page(browser)
    await sign_in(other, console, accounts.theirs, accounts.their_key)
    await other.goto(f"{console.base_url}/profiles/{world.profile}")
    assert "Not found" in await other.inner_text("h1")
    their_csrf = await other.get_attribute("form.signout input[name=csrf]", "value")
    their_cookie = _cookie(await other.context.cookies(), "consentflow_console")
    async with httpx.AsyncClient(base_url=console.base_url, timeout=30) as c:
        r = await c.post(
            approve, cookies={"consentflow_console": their_cookie}, data={"csrf": their_csrf}
        )
        assert r.status_code == 404 and "no such alert in review" in r.text
    await other.context.close()
    # Sign out; the same cookie and token, replayed, open nothing.
    await page.click("text=Sign out")
    await page.wait_for_url(re.compile("/sign-in"))
    async with httpx.AsyncClient(base_url=console.base_url, timeout=30) as c:
        r = await c.get("/flows", cookies=ours)
        assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")
        r = await c.post(approve, cookies=ours, data={"csrf": csrf})
        assert r.status_code == 403
    await page.context.close()
    assert target in await in_review(services, world)


SCREENS = [
    ("flows", "/flows", {"en": "NPS detractors", "de": "NPS detractors"}),
    ("flow", "/flows/nps", {"en": "Sent to", "de": "Empfänger"}),
    ("alert-action", "/flows/nps/alerts/review", {"en": "Activity overview", "de": "Übersicht"}),
    (
        "alert-skipped",
        "/flows/night-desk/alerts/night?status=skipped",
        {"en": "Skipped: no confirmed recipients", "de": "keine bestätigten Empfänger"},
    ),
    ("alert-held", "/flows/nps/alerts/review/{held}", {"en": "Approve", "de": "Freigeben"}),
    (
        "alert-skipped-detail",
        "/flows/night-desk/alerts/night/{skipped}",
        {"en": "Skipped: no confirmed recipients", "de": "keine bestätigten Empfänger"},
    ),
    ("alert-sent", "/flows/churn/alerts/churn-alert/{sent}", {"en": "Sent", "de": "Gesendet"}),
    ("reviews", "/reviews", {"en": "Review queue", "de": "Prüfwarteschlange"}),
    ("recipients", "/recipients", {"en": "Alert recipients", "de": "Empfänger"}),
    ("activity", "/activity", {"en": "Recipient activity", "de": "Empfängeraktivität"}),
    ("profiles", "/profiles", {"en": "Find a profile", "de": "Profil finden"}),
    ("profiles-none", "/profiles?q=nobody%40nowhere.test", {"en": "No profile", "de": "Kein"}),
    ("profile", "/profiles/{profile}", {"en": "Opt-outs by level", "de": "Abmeldungen"}),
    (
        "profile-explain",
        "/profiles/{profile}?channel=email&purpose=marketing#explain",
        {"en": "a message may", "de": "Nachricht"},
    ),
    ("opt-outs", "/opt-outs", {"en": "Opt-outs by level", "de": "Abmeldungen nach Ebene"}),
    (
        "dead-letters-topic",
        "/dead-letters/consent-commands",
        {"en": "teleport", "de": "teleport"},
    ),
    ("dead-letters", "/dead-letters", {"en": "consent-commands", "de": "consent-commands"}),
    ("not-found", "/flows/no-such-flow", {"en": "Not found", "de": "Nicht gefunden"}),
]
if SHOTS:
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
# Every screen is checked in all four; the screenshots keep two (English on a desktop,
# German on a phone).
SHOT_VARIANTS = ("en-desktop", "de-phone")


async def test_w6_every_screen_passes_axe_on_desktop_and_phone_in_english_and_german(
    console, browser, world: World
) -> None:
    for variant, (locale, viewport) in {
        "en-desktop": ("en-GB", DESKTOP),
        "de-phone": ("de-DE", PHONE),
        "en-phone": ("en-GB", PHONE),
        "de-desktop": ("de-DE", DESKTOP),
    }.items():
        page = await new_page(browser, locale, viewport)
        lang = locale[:2]
        await page.goto(console.base_url + "/sign-in")
        assert await page.get_attribute("html", "lang") == lang
        await axe(page, f"sign-in {variant}")
        await fits(page, f"sign-in {variant}")
        if variant in SHOT_VARIANTS:
            await shot(page, f"sign-in-{variant}")
        # A wrong key: the plain error on the sign-in page.
        await page.fill("#account", world.account)
        await page.fill("#key", "not-the-key-of-anyone")
        await page.click("form.stack button[type=submit]")
        await page.wait_for_selector("#signin-error")
        await axe(page, f"sign-in refused {variant}")
        await fits(page, f"sign-in refused {variant}")
        if variant in SHOT_VARIANTS:
            await shot(page, f"sign-in-refused-{variant}")
        await sign_in(page, console, world.account, world.key)
        ids = {
            "profile": world.profile,
            "held": quote(world.held[f"cyd-{world.run}"], safe=""),
            "skipped": quote(world.skipped_alert, safe=""),
            "sent": quote(world.sent_alert, safe=""),
        }
        for name, path, want in SCREENS:
            await page.goto(console.base_url + path.format(**ids))
            assert await page.get_attribute("html", "lang") == lang
            assert want[lang] in await page.inner_text("main"), (name, variant)
            await axe(page, f"{name} {variant}")
            await fits(page, f"{name} {variant}")
            if variant in SHOT_VARIANTS:
                await shot(page, f"{name}-{variant}")
        await page.context.close()


async def _tab_to(page: Any, predicate: str, most: int = 80) -> None:
    """Press Tab until the focused element satisfies the JS `predicate(el)`."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await page.evaluate(
            f"() => {{ const el = document.activeElement; return {predicate}; }}"
        ):
            return
    raise AssertionError(f"no focusable element with {predicate} in {most} tabs")


async def test_w6_keyboard_only_sign_in_and_approval(
    console, browser, world: World, services
) -> None:
    page = await new_page(browser, "en-GB", PHONE)
    await page.goto(console.base_url + "/sign-in")
    await _tab_to(page, "el.id === 'account'")
    await page.keyboard.press("Control+A")
    await page.keyboard.type(world.account)
    await page.keyboard.press("Tab")
    await page.keyboard.type(world.key)
    await page.keyboard.press("Tab")
    await page.keyboard.type("Kim Keyboard")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/flows$"))
    await _tab_to(page, "el.textContent === 'Review queue'")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/reviews$"))
    alert_id = world.held[f"bob-{world.run}"]
    await _tab_to(page, f"el.getAttribute('aria-label') === 'Approve alert {alert_id}'")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"text=Approved: alert {alert_id}")
    await page.context.close()

    async def decided() -> bool:
        return alert_id not in await in_review(services, world)

    await eventually(decided, timeout_s=30)
