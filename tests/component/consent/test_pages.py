"""The consent service's link pages as a person (and a mail scanner) meets them, on the
real service: GET and HEAD change nothing, buttons POST (C12, C8), expired links offer a
new mail, only canonical tokens work, the preference centre (W2, C10, C9), branding and
language (W1) and the mails themselves, read with Python's email parser (W3)."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import httpx

from shared.contracts import topics
from tests.component.consent.support import Api, Tail, consent_cmd, headers
from tests.conftest import Kafka, eventually, mail_to
from tools.devstack.stack import MAIL_DOMAIN

CC = topics.CONSENT_CHANGES
CONFIRM = re.compile(r"http://\S+/links/consent/confirm\?token=\S+")
PREFS = re.compile(r"http://\S+/links/consent/preferences\?token=\S+")
FORM = {"content-type": "application/x-www-form-urlencoded"}


def pid() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


async def mails(stack: Any, email: str, n: int = 1) -> list[Any]:
    async def probe() -> list[Any]:
        got = mail_to(stack, email)
        return got if len(got) >= n else []

    return await eventually(probe, timeout_s=20)


def plain(mail: Any) -> str:
    return mail.get_body(("plain",)).get_content()


async def pending_confirmation(stack: Any, kafka: Kafka, acct: str, p: str, **kw: Any) -> str:
    """Ask for a double opt-in subscription; the confirm URL from the mail."""
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, method="form", **kw))
    (mail,) = await mails(stack, f"{p}@example.test")
    return CONFIRM.search(plain(mail)).group(0)


async def age_confirmations(stack: Any, acct: str, p: str, days: int) -> None:
    conn = await asyncpg.connect(stack.dsn, server_settings={"search_path": "consent"})
    try:
        await conn.execute(
            "UPDATE confirmations SET requested_at = requested_at - make_interval(days => $3)"
            " WHERE account_id = $1 AND profile_id = $2",
            acct,
            p,
            days,
        )
    finally:
        await conn.close()


async def test_c12_c8_head_and_get_of_a_confirm_link_change_nothing_the_button_confirms(
    services, stack, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    p = pid()
    url = await pending_confirmation(stack, kafka, acct, p)
    async with httpx.AsyncClient() as client:
        assert (await client.head(url)).status_code == 200
        page = await client.get(url)
        assert page.status_code == 200
        assert '<form class="actions" method="post">' in page.text
        assert "Yes, subscribe me" in page.text
        assert (await client.head(url)).status_code == 200
        assert await api.status(acct, p) == "never_subscribed"
        assert (await api.state(acct, p))["pending_confirmations"]
        done = await client.post(url, data={"action": "confirm"}, headers=FORM)
        assert done.status_code == 200 and "Subscription confirmed" in done.text
        used = await client.get(url)
        assert used.status_code == 200 and "Already confirmed" in used.text
        again = await client.post(url)
        assert again.status_code == 200 and "Already confirmed" in again.text
    await api.wait_status(acct, p, "subscribed")

    async def events() -> list[dict]:
        return tail.of(CC, account_id=acct, profile_id=p)

    got = await eventually(events, timeout_s=20)
    assert [e["type"] for e in got] == ["Subscribed to Email Marketing"]


async def test_c12_head_and_get_of_unsubscribe_and_preference_links_change_nothing(
    services, api: Api, kafka: Kafka, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, list_id="deals"))
    await api.wait_status(acct, p, "subscribed")
    r = await api.consent.get(f"/accounts/{acct}/profiles/{p}/links", headers=headers(acct))
    async with httpx.AsyncClient() as client:
        for url in r.json().values():
            for _ in range(2):
                assert (await client.head(url)).status_code == 200
                assert (await client.get(url)).status_code == 200
    state = await api.state(acct, p)
    assert state["channels"]["email"]["status"] == "subscribed"
    assert state["lists"] == {"deals": "subscribed"}


async def test_c12_an_expired_confirm_link_changes_nothing_and_offers_a_new_mail(
    services, stack, api: Api, kafka: Kafka, acct: str
) -> None:
    p = pid()
    email = f"{p}@example.test"
    url = await pending_confirmation(stack, kafka, acct, p, list_id="news")
    await age_confirmations(stack, acct, p, 15)  # default lifetime: 14 days
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        assert page.status_code == 410
        assert "This link has expired" in page.text and "Send me a new email" in page.text
        pressed = await client.post(url, data={"action": "confirm"}, headers=FORM)
        assert pressed.status_code == 410
        assert await api.status(acct, p) == "never_subscribed"
        renewed = await client.post(url, data={"action": "renew"}, headers=FORM)
        assert renewed.status_code == 202 and "A new email is on its way" in renewed.text
        # Pressed twice: still one new mail.
        assert (await client.post(url, data={"action": "renew"}, headers=FORM)).status_code == 202
        _, fresh = await mails(stack, email, 2)
        new_url = CONFIRM.search(plain(fresh)).group(0)
        assert new_url != url
        assert (await client.post(new_url)).status_code == 200
    state = await api.wait_status(acct, p, "subscribed")
    assert state["lists"] == {"news": "subscribed"}
    assert len(mail_to(stack, email)) == 2


async def test_c12_non_canonical_encoding_of_a_genuine_token_is_rejected(
    services, stack, api: Api, kafka: Kafka, acct: str
) -> None:
    p = pid()
    url = await pending_confirmation(stack, kafka, acct, p)
    base, token = url.split("?")[0], parse_qs(urlparse(url).query)["token"][0]
    body, mac = token.split(".")
    variants = [f"{body}=.{mac}", f"{body}.{mac}==", f"{body[:2]}!{body[2:]}.{mac}"]
    async with httpx.AsyncClient() as client:
        for variant in variants:
            r = await client.post(base, params={"token": variant})
            assert r.status_code == 400, variant
            assert "This link does not work" in r.text
    assert await api.status(acct, p) == "never_subscribed"


async def test_w3_c8_confirmation_mail_is_multipart_with_a_button_branded_in_german(
    services, stack, api: Api, kafka: Kafka, acct: str
) -> None:
    await api.settings(
        acct,
        display_name="Kaffeehaus Müller",
        accent_colour="#8a3b12",
        support_email="hilfe@kaffee.test",
        language="de",
        list_names={"news": "Neuigkeiten"},
    )
    p = pid()
    await kafka.send(
        topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, method="form", list_id="news")
    )
    (mail,) = await mails(stack, f"{p}@example.test")
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith(f"@{MAIL_DOMAIN}>")
    assert mail["Subject"] == "Bitte bestätigen Sie Ihre Anmeldung"
    assert mail["From"].addresses[0].display_name == "Kaffeehaus Müller"
    text = plain(mail)
    url = CONFIRM.search(text).group(0)
    assert "„Neuigkeiten“" in text and "14 Tage" in text
    html = mail.get_body(("html",)).get_content()
    assert f'<a href="{url.replace("&", "&amp;")}"' in html
    assert "Anmeldung bestätigen</a>" in html and "#8a3b12" in html
    async with httpx.AsyncClient() as client:
        page = await client.get(url, headers={"accept-language": "en"})  # the account's wins
        assert '<html lang="de">' in page.text and "Ja, anmelden" in page.text
        assert "Kaffeehaus Müller" in page.text and "hilfe@kaffee.test" in page.text


async def test_w1_language_follows_the_browser_when_the_account_sets_none(
    services, api: Api, kafka: Kafka, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False)
    p = pid()
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p))
    await api.wait_status(acct, p, "subscribed")
    r = await api.consent.get(f"/accounts/{acct}/profiles/{p}/links", headers=headers(acct))
    url = r.json()["unsubscribe_url"]
    async with httpx.AsyncClient() as client:
        de = await client.get(url, headers={"accept-language": "de-AT,de;q=0.9,en;q=0.5"})
        assert '<html lang="de">' in de.text and "Abmelden" in de.text
        en = await client.get(url, headers={"accept-language": "fr-FR,fr;q=0.9"})
        assert '<html lang="en">' in en.text and "Unsubscribe" in en.text
        bad = await client.get(url.split("?")[0] + "?token=x", headers={"accept-language": "de"})
        assert bad.status_code == 400 and "Dieser Link funktioniert nicht" in bad.text


async def test_w1_account_settings_api_validates_branding(services, api: Api, acct: str) -> None:
    url = f"/accounts/{acct}/consent/settings"
    for bad in (
        {"accent_colour": "blue"},
        {"logo_url": "http://acme.test/logo.png"},
        {"language": "fr"},
        {"support_email": "no address"},
        {"display_name": "A\r\nBcc: x@y.test"},
    ):
        r = await api.consent.put(url, json=bad, headers=headers(acct))
        assert r.status_code == 422, bad
    good = {"logo_url": "https://acme.test/logo.png", "accent_colour": "#123456"}
    r = await api.consent.put(url, json=good, headers=headers(acct))
    assert r.status_code == 200 and r.json()["logo_url"] == good["logo_url"]


async def test_w2_c10_c9_preference_centre_levels_lists_sms_and_what_changed(
    services, api: Api, kafka: Kafka, tail: Tail, acct: str
) -> None:
    await api.settings(
        acct,
        email_double_opt_in=False,
        display_name="Acme Group",
        list_names={"deals": "Weekly deals", "news": "Newsletter"},
    )
    p = pid()
    phone = "+4915112345678"
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, list_id="deals"))
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p, channel="sms", phone=phone))
    await api.wait_status(acct, p, "subscribed", channel="sms_marketing")
    await api.wait_status(acct, p, "subscribed")
    r = await api.consent.get(
        f"/accounts/{acct}/profiles/{p}/links",
        params={"client_id": "shoes", "user_id": "outlet"},
        headers=headers(acct),
    )
    url = r.json()["preferences_url"]
    async with httpx.AsyncClient() as client:
        page = await client.get(url)
        assert page.status_code == 200
        for words in (
            "Stop email from outlet only",
            "Stop email from shoes",
            "Stop all email from Acme Group",
            "Weekly deals",
            "Newsletter",
            "Marketing texts",
        ):
            assert words in page.text, words

        async def save(**form: Any) -> str:
            r = await client.post(url, data=form, headers=FORM)
            assert r.status_code == 200, r.text
            return r.text

        keep_all = {"lists_shown": ["deals", "news"], "list": ["deals"]}
        keep_sms = {"sms_marketing": "on", "sms_transactional": "on"}
        text = await save(email="user", **keep_all, **keep_sms)
        assert "Email from outlet: now Unsubscribed" in text
        state = await api.state(acct, p)
        assert state["opt_outs"] == ["user:shoes/outlet"]
        assert state["channels"]["email"]["status"] == "subscribed"

        text = await save(email="client", **keep_all, **keep_sms)
        assert "Email from shoes: now Unsubscribed" in text
        assert (await api.state(acct, p))["opt_outs"] == ["client:shoes", "user:shoes/outlet"]

        text = await save(email="keep", lists_shown=["deals", "news"], list=["news"])
        for change in (
            "Email from shoes: now Subscribed",
            "Email from outlet: now Subscribed",
            "List “Weekly deals”: now Unsubscribed",
            "List “Newsletter”: now Subscribed",
            "Marketing texts: now Unsubscribed",
            "Service texts: now Unsubscribed",
        ):
            assert change in text, change
        text = await save(email="keep", lists_shown=["deals", "news"], list=["news"])
        assert "Nothing needed to change" in text

        text = await save(email="group", lists_shown=["deals", "news"], list=["news"])
        assert "Email: now Unsubscribed" in text
        unknown = await client.post(url, data={"email": "everyone"}, headers=FORM)
        assert unknown.status_code == 400
    state = await api.state(acct, p)
    assert state["channels"]["email"]["status"] == "unsubscribed"
    assert state["opt_outs"] == ["group"]
    assert state["lists"] == {"deals": "unsubscribed", "news": "subscribed"}
    assert state["channels"]["sms_marketing"]["status"] == "unsubscribed"
    hist = (
        await api.consent.get(
            f"/accounts/{acct}/profiles/{p}/consent/history", headers=headers(acct)
        )
    ).json()["history"]
    assert {h["method"] for h in hist if h["act_id"].startswith("pref:")} == {"preference_center"}

    async def events() -> list[str]:
        # Three opt-outs made here (sender, client, group), each a click (C9).
        got = [e["type"] for e in tail.of(CC, account_id=acct, profile_id=p)]
        return got if got.count("Clicked and Unsubscribed from Email") >= 3 else []

    types = await eventually(events, timeout_s=20)
    assert "Unsubscribed from SMS" in types
    assert "Subscribed to List" in types and "Unsubscribed from List" in types


async def test_w3_opt_out_confirmation_mail_carries_a_way_back_in(
    services, stack, api: Api, kafka: Kafka, acct: str
) -> None:
    await api.settings(acct, email_double_opt_in=False, optout_confirmation_email=True)
    p = pid()
    email = f"{p}@example.test"
    await kafka.send(topics.CONSENT_COMMANDS, p, consent_cmd(acct, p))
    await api.wait_status(acct, p, "subscribed")
    r = await api.consent.get(f"/accounts/{acct}/profiles/{p}/links", headers=headers(acct))
    async with httpx.AsyncClient() as client:
        unsubscribe = r.json()["unsubscribe_url"]
        await client.post(unsubscribe, content="List-Unsubscribe=One-Click")
        await client.post(unsubscribe, content="List-Unsubscribe=One-Click")  # repeated
        await api.wait_status(acct, p, "unsubscribed")
        (mail,) = await mails(stack, email)
        assert mail["Subject"] == "You are unsubscribed"
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail.get_content_type() == "multipart/alternative"
        back = PREFS.search(plain(mail)).group(0)
        assert "Subscribe again" in mail.get_body(("html",)).get_content()
        saved = await client.post(back, data={"email": "keep"}, headers=FORM)
        assert saved.status_code == 200 and "Email: now Subscribed" in saved.text
    await api.wait_status(acct, p, "subscribed")
    assert len(mail_to(stack, email)) == 1  # one opt-out, one mail


async def test_w2_c8_preference_centre_shows_a_pending_confirmation_and_why_sms_is_greyed(
    services, stack, api: Api, kafka: Kafka, acct: str
) -> None:
    """A double opt-in not yet confirmed reads as waiting for it, not "Not subscribed";
    an SMS choice that cannot be ticked says why (its consent belongs to the number)."""
    p = pid()
    await pending_confirmation(stack, kafka, acct, p)
    r = await api.consent.get(f"/accounts/{acct}/profiles/{p}/links", headers=headers(acct))
    url = r.json()["preferences_url"]
    async with httpx.AsyncClient() as client:
        page = (await client.get(url)).text
        german = (await client.get(url, headers={"accept-language": "de"})).text
    now = re.search(r'Now: <span class="status">([^<]*)</span>', page)
    assert now is not None and now.group(1).startswith("Waiting for your confirmation")
    assert "disabled" in page and "text START to us from that number" in page
    assert "Wartet auf Ihre Bestätigung" in german
    assert "senden Sie START von dieser Nummer an uns" in german
