"""The recipient links on the real dispatcher as a person and a mail scanner meet them:
opening (GET, HEAD) changes nothing, the page's button or RFC 8058 one-click POST acts
(C12, A3, A4); an expired confirm link offers a new mail; mails are multipart with a
button and automated (W3); pages and mails are branded and in the account's language (W1)."""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.contracts import topics
from tests.component.alert_dispatcher.conftest import (
    alerts_to,
    auth,
    confirmations,
    flow,
    link_in,
    request,
    save_flow,
)
from tests.conftest import eventually, mail_to
from tools.devstack.stack import MAIL_DOMAIN

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def _status(api, account: str, email: str) -> str | None:
    r = await api.get(f"/accounts/{account}/alert-recipients", headers=auth(account))
    return {x["email"]: x["status"] for x in r.json()["recipients"]}.get(email)


async def _async(value: Any) -> Any:
    return value


async def test_a3_a4_c12_opening_recipient_links_changes_nothing_buttons_act(
    dispatcher, kafka, api, acct
) -> None:
    lead = f"lead-{acct}@acme.test"
    await save_flow(kafka, flow(acct, "nps", [lead]))
    (mail,) = await confirmations(dispatcher, lead)
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith(f"@{MAIL_DOMAIN}>")
    confirm = link_in(mail, "confirm")
    html = mail.get_body(("html",)).get_content()
    assert f'<a href="{confirm}"' in html and "Confirm alerts</a>" in html
    for _ in range(2):
        assert (await api.head(confirm)).status_code == 200
        page = await api.get(confirm)
        assert page.status_code == 200 and "Confirm alerts" in page.text
    assert await _status(api, acct, lead) == "unconfirmed"
    done = await api.post(confirm, data={"action": "confirm"}, headers=FORM)
    assert done.status_code == 200 and "Alerts confirmed" in done.text
    assert await _status(api, acct, lead) == "confirmed"

    await kafka.send(topics.ALERT_REQUESTS, "p", request(acct, [lead]))
    (alert,) = await eventually(lambda: _async(alerts_to(dispatcher, lead)))
    assert alert["Auto-Submitted"] == "auto-generated"
    assert alert["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = link_in(alert, "unsubscribe")
    assert alert["List-Unsubscribe"] == f"<{unsubscribe}>"
    for _ in range(2):
        assert (await api.head(unsubscribe)).status_code == 200
        assert (await api.get(unsubscribe)).status_code == 200
    assert await _status(api, acct, lead) == "confirmed"
    one_click = await api.post(unsubscribe, content="List-Unsubscribe=One-Click")
    assert one_click.status_code == 200 and "Alerts stopped" in one_click.text
    assert await _status(api, acct, lead) == "disabled"


async def test_c12_a3_expired_recipient_confirm_link_offers_a_new_mail(
    dispatcher, kafka, api, acct
) -> None:
    lead = f"late-{acct}@acme.test"
    await save_flow(kafka, flow(acct, "nps", [lead]))
    (mail,) = await confirmations(dispatcher, lead)
    confirm = link_in(mail, "confirm")
    conn = await asyncpg.connect(
        dispatcher.dsn, server_settings={"search_path": "alert_dispatcher"}
    )
    try:
        await conn.execute(
            "UPDATE recipients SET asked_at = now() - interval '15 days'"
            " WHERE account_id = $1 AND email = $2",
            acct,
            lead,
        )
    finally:
        await conn.close()
    page = await api.get(confirm)
    assert page.status_code == 410 and "Send me a new email" in page.text
    assert (await api.post(confirm, data={"action": "confirm"}, headers=FORM)).status_code == 410
    assert await _status(api, acct, lead) == "unconfirmed"
    renewed = await api.post(confirm, data={"action": "renew"}, headers=FORM)
    assert renewed.status_code == 202
    _, fresh = await confirmations(dispatcher, lead, 2)
    assert fresh["From"].addresses[0].addr_spec == "alerts@acme.test"  # the same sender
    assert (await api.post(link_in(fresh, "confirm"))).status_code == 200
    assert await _status(api, acct, lead) == "confirmed"


async def test_w1_w3_recipient_mail_and_pages_in_the_accounts_language_and_brand(
    dispatcher, kafka, api, acct
) -> None:
    r = await api.put(
        f"/accounts/{acct}/alert-pages",
        json={"display_name": "Kaffeehaus Müller", "language": "de", "accent_colour": "#ffd400"},
        headers=auth(acct),
    )
    assert r.status_code == 200, r.text
    bad = await api.put(
        f"/accounts/{acct}/alert-pages", json={"accent_colour": "yellow"}, headers=auth(acct)
    )
    assert bad.status_code == 422
    lead = f"de-{acct}@acme.test"
    await save_flow(kafka, flow(acct, "nps", [lead]))

    async def mail() -> list[Any]:
        return mail_to(dispatcher, lead)

    (got,) = await eventually(mail, 20)
    assert got["Subject"] == "Interne Benachrichtigungen von Kaffeehaus Müller bestätigen"
    confirm = link_in(got, "confirm")
    html = got.get_body(("html",)).get_content()
    assert "Benachrichtigungen bestätigen</a>" in html
    assert "color:#000000" in html  # dark text on a light accent: readable (W1)
    page = await api.get(confirm, headers={"accept-language": "en"})
    assert '<html lang="de">' in page.text and "Kaffeehaus Müller" in page.text
    assert "--accent: #ffd400" in page.text
