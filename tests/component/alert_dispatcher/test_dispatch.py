"""A5–A9 on the real dispatcher, broker, PostgreSQL and SMTP capture: who is mailed and
when, templates, activity and the API, the sending limit, SMTP failures, redelivery and
a crash of the dispatcher in the middle of sending."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

from shared.contracts import Profile, topics
from shared.links import sign, verify
from shared.mail import message_id
from tests.component.alert_dispatcher.conftest import (
    NAME,
    WINDOW_S,
    alerts_to,
    auth,
    body,
    confirmed_recipients,
    outcome_of,
    request,
)
from tests.conftest import eventually
from tools.devstack.stack import MAIL_DOMAIN


async def _action(api, account: str, **params) -> dict:
    r = await api.get(f"/accounts/{account}/alerts/nps/alert", headers=auth(account), params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def _deliveries(api, account: str, alert_id: str) -> dict[str, dict]:
    r = await api.get(f"/accounts/{account}/alert-activity", headers=auth(account))
    for a in r.json()["alerts"]:
        if a["alert_id"] == alert_id:
            return {d["email"]: d for d in a["deliveries"]}
    return {}


async def _async(value):
    return value


async def test_a5_each_confirmed_recipient_gets_one_mail_with_own_one_click_unsubscribe(
    dispatcher, kafka, api, acct
) -> None:
    a, b, c = (f"{n}-{acct}@acme.test" for n in ("ana", "bo", "cy"))
    await confirmed_recipients(dispatcher, kafka, api, acct, [a, b])
    req = request(acct, [a.upper(), b, c])
    await kafka.send(topics.ALERT_REQUESTS, req.profile_id, req)
    outcome = await outcome_of(kafka, acct, req.alert_id)
    assert outcome["type"] == "sent" and outcome["recipients"] == sorted([a, b])
    assert outcome["profile_id"] == req.profile_id
    assert alerts_to(dispatcher, c) == []
    for rcpt in (a, b):
        mails = alerts_to(dispatcher, rcpt)
        assert len(mails) == 1
        mail = mails[0]
        assert mail["Message-ID"] == message_id("alert", req.alert_id, rcpt, domain=MAIL_DOMAIN)
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = str(mail["List-Unsubscribe"]).strip("<>")
        claims = verify(dispatcher.link_secret, "recipient-unsubscribe", url.split("token=")[1])
        assert (claims["a"], claims["e"]) == (acct, rcpt)
        assert url in body(mail) and str(mail["Subject"]) == f"Detractor: {req.profile.email}"
    # RFC 8058: a one-click POST to the List-Unsubscribe URL disables that recipient only.
    url = str(alerts_to(dispatcher, a)[0]["List-Unsubscribe"]).strip("<>")
    r = await api.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    sent_to = {x["email"]: x["status"] for x in (await _action(api, acct))["sent_to"]}
    assert sent_to == {a: "disabled", b: "confirmed"}


async def test_a5_skips_without_confirmed_recipients(dispatcher, kafka, api, acct) -> None:
    nobody = f"nobody-{acct}@acme.test"
    req = request(acct, [nobody])
    await kafka.send(topics.ALERT_REQUESTS, req.profile_id, req)
    outcome = await outcome_of(kafka, acct, req.alert_id)
    assert outcome["type"] == "skipped"
    assert outcome["reason"] == "Skipped: no confirmed recipients"
    assert outcome["recipients"] == []
    assert alerts_to(dispatcher, nobody) == []


async def test_a5_recipient_disabled_after_the_alert_was_queued_is_not_mailed(
    dispatcher, kafka, api, acct
) -> None:
    a, b = f"ana-{acct}@acme.test", f"bo-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [a, b])
    dispatcher.smtp.handler.fail_recipient(a, "451 4.3.0 try later")
    try:
        req = request(acct, [a, b])
        await kafka.send(topics.ALERT_REQUESTS, req.profile_id, req)
        await eventually(lambda: _async(alerts_to(dispatcher, b)))
        # a's mail is queued and being retried; a unsubscribes (through a link of theirs).
        token = sign(dispatcher.link_secret, "recipient-unsubscribe", {"a": acct, "e": a, "g": 1})
        r = await api.post("/links/recipients/unsubscribe", params={"token": token})
        assert r.status_code == 200

        async def a_skipped() -> bool:
            return (await _deliveries(api, acct, req.alert_id)).get(a, {}).get(
                "status"
            ) == "skipped"

        await eventually(a_skipped)
    finally:
        dispatcher.smtp.handler.fail_recipient(a, None)
    outcome = await outcome_of(kafka, acct, req.alert_id)
    assert (outcome["type"], outcome["recipients"]) == ("sent", [b])
    assert alerts_to(dispatcher, a) == []
    delivery = (await _deliveries(api, acct, req.alert_id))[a]
    assert delivery["error"] == "recipient disabled at send time"


async def test_a6_activity_counts_lists_and_recipient_activity_scoped_by_account(
    dispatcher, kafka, api, acct
) -> None:
    lead, ghost = f"lead-{acct}@acme.test", f"ghost-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [lead])
    sent, skipped = request(acct, [lead, ghost]), request(acct, [ghost])
    for req in (sent, skipped):
        await kafka.send(topics.ALERT_REQUESTS, req.profile_id, req)
    assert (await outcome_of(kafka, acct, sent.alert_id))["type"] == "sent"
    assert (await outcome_of(kafka, acct, skipped.alert_id))["type"] == "skipped"

    action = await _action(api, acct)
    assert action["totals"] == {"sent": 1, "skipped": 1}
    assert {
        "status": "skipped",
        "reason": "Skipped: no confirmed recipients",
        "count": 1,
    } in action["counts"]
    by_status = await _action(api, acct, status="skipped")
    assert [(x["alert_id"], x["reason"]) for x in by_status["alerts"]] == [
        (skipped.alert_id, "Skipped: no confirmed recipients")
    ]
    activity = (
        await api.get(
            f"/accounts/{acct}/alert-activity", headers=auth(acct), params={"email": lead}
        )
    ).json()["alerts"]
    assert len(activity) == 1
    one = activity[0]
    assert (one["alert_id"], one["profile_id"], one["sent_to"]) == (
        sent.alert_id,
        sent.profile_id,
        [lead],
    )
    assert {d["email"]: d["status"] for d in one["deliveries"]} == {lead: "sent", ghost: "skipped"}

    # X5: another account's key learns nothing; no key is refused.
    other = dispatcher.key_of("acme")
    for path in (
        f"/accounts/{acct}/alerts/nps/alert",
        f"/accounts/{acct}/alert-activity",
        f"/accounts/{acct}/alert-recipients",
        f"/accounts/{acct}/flows/nps/alerts",
        f"/accounts/{acct}/alert-settings",
    ):
        assert (
            await api.get(path, headers={"Authorization": f"Bearer {other}"})
        ).status_code == 404
        assert (await api.get(path)).status_code == 401


async def test_a7_templates_use_person_and_event_escaped_and_missing_values_are_empty(
    dispatcher, kafka, api, acct
) -> None:
    lead = f"lead-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [lead])
    pid = "p-tpl"
    base = request(
        acct,
        [lead],
        subject="NPS {{ event.score }} from {{ person.first_name }}{{ person.nickname }}",
        body="<p>{{ person.first_name }} ({{ person.tier }}) wrote: {{ event.comment }}"
        "[{{ event.missing.deeper }}]</p>",
    )
    metric = base.model_copy(
        update={
            "profile": Profile(id=pid, first_name="<b>Ada</b>", properties={"tier": "gold"}),
            "profile_id": pid,
            "event": {"score": 2, "comment": 'slow & "rude" <script>'},
        }
    )
    await kafka.send(topics.ALERT_REQUESTS, pid, metric)
    await outcome_of(kafka, acct, metric.alert_id)
    mail = next(
        m
        for m in alerts_to(dispatcher, lead)
        if m["Message-ID"] == message_id("alert", metric.alert_id, lead, domain=MAIL_DOMAIN)
    )
    assert str(mail["Subject"]) == "NPS 2 from <b>Ada</b>"
    html = body(mail, "html")
    assert "&lt;b&gt;Ada&lt;/b&gt; (gold) wrote: slow &amp; &#34;rude&#34; &lt;script&gt;[]" in html
    assert "<script>" not in html
    assert body(mail).startswith('<p><b>Ada</b> (gold) wrote: slow & "rude" <script>[]</p>')

    listed = base.model_copy(update={"alert_id": base.alert_id + "-list", "trigger_type": "list"})
    await kafka.send(topics.ALERT_REQUESTS, pid, listed)
    await outcome_of(kafka, acct, listed.alert_id)
    mail = next(
        m
        for m in alerts_to(dispatcher, lead)
        if m["Message-ID"] == message_id("alert", listed.alert_id, lead, domain=MAIL_DOMAIN)
    )
    assert str(mail["Subject"]) == "NPS  from Ada"  # no event.* outside metric flows


async def test_a8_past_the_sending_limit_alerts_wait_and_go_out_later(
    dispatcher, kafka, api, acct
) -> None:
    lead = f"lead-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [lead])
    settings = f"/accounts/{acct}/alert-settings"
    assert (await api.put(settings, headers=auth(acct), json={"x": 1})).status_code == 400
    r = await api.put(settings, headers=auth(acct), json={"alert_send_limit_per_hour": 2})
    assert r.json()["alert_send_limit_per_hour"] == 2
    reqs = [request(acct, [lead]) for _ in range(5)]
    started = time.monotonic()
    for req in reqs:
        await kafka.send(topics.ALERT_REQUESTS, "same-profile", req)

    async def waiting() -> dict | None:
        action = await _action(api, acct)
        return action if action["totals"].get("waiting") else None

    seen = await eventually(waiting, 10, 0.05)
    assert len(alerts_to(dispatcher, lead)) <= 2
    assert all(
        d["waiting_until"]
        for a in seen["alerts"]
        if a["status"] == "waiting"
        for d in a["deliveries"]
    )
    for req in reqs:
        assert (await outcome_of(kafka, acct, req.alert_id))["type"] == "sent"
    assert time.monotonic() - started >= WINDOW_S * 0.9  # five mails at two a window: 3 windows
    assert len(alerts_to(dispatcher, lead)) == 5  # none dropped
    done = [
        datetime.fromisoformat(d["completed_at"]).timestamp()
        for a in (await _action(api, acct))["alerts"]
        for d in a["deliveries"]
    ]
    assert len({int(t // WINDOW_S) for t in done}) >= 2


async def test_a9_transient_failures_and_lost_connections_are_retried(
    dispatcher, kafka, api, acct
) -> None:
    a, b = f"ana-{acct}@acme.test", f"bo-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [a, b])
    dispatcher.smtp.handler.fail_recipient(a, "451 4.3.0 try later", times=2)
    dispatcher.smtp.handler.fail_recipient(b, "drop", times=1)
    req = request(acct, [a, b])
    await kafka.send(topics.ALERT_REQUESTS, req.profile_id, req)
    outcome = await outcome_of(kafka, acct, req.alert_id)
    assert (outcome["type"], outcome["recipients"]) == ("sent", sorted([a, b]))
    assert len(alerts_to(dispatcher, a)) == 1 and len(alerts_to(dispatcher, b)) == 1


async def test_a9_permanent_failures_are_recorded_per_recipient(
    dispatcher, kafka, api, acct
) -> None:
    a, b = f"ana-{acct}@acme.test", f"bo-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [a, b])
    dispatcher.smtp.handler.fail_recipient(a, "550 5.1.1 no such user")
    try:
        req, only_a = request(acct, [a, b]), request(acct, [a])
        for r in (req, only_a):
            await kafka.send(topics.ALERT_REQUESTS, r.profile_id, r)
        outcome = await outcome_of(kafka, acct, req.alert_id)
        assert (outcome["type"], outcome["recipients"], outcome["failed_recipients"]) == (
            "sent",
            [b],
            [a],
        )
        failed = await outcome_of(kafka, acct, only_a.alert_id)
        assert (failed["type"], failed["failed_recipients"]) == ("failed", [a])
    finally:
        dispatcher.smtp.handler.fail_recipient(a, None)
    delivery = (await _deliveries(api, acct, req.alert_id))[a]
    assert delivery["status"] == "failed" and delivery["error"].startswith("550")
    assert alerts_to(dispatcher, a) == []


async def test_a9_a_redelivered_request_is_mailed_once(dispatcher, kafka, api, acct) -> None:
    lead = f"lead-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [lead])
    req = request(acct, [lead])
    await kafka.send(topics.ALERT_REQUESTS, "k", req)
    await kafka.send(topics.ALERT_REQUESTS, "k", req)
    await outcome_of(kafka, acct, req.alert_id)
    await kafka.send(topics.ALERT_REQUESTS, "k", req)
    marker = request(acct, [lead])  # same key, so consumed after the third copy
    await kafka.send(topics.ALERT_REQUESTS, "k", marker)
    await outcome_of(kafka, acct, marker.alert_id)
    assert (await outcome_of(kafka, acct, req.alert_id))["type"] == "sent"
    ids = Counter(str(m["Message-ID"]) for m in alerts_to(dispatcher, lead))
    assert ids == {
        message_id("alert", req.alert_id, lead, domain=MAIL_DOMAIN): 1,
        message_id("alert", marker.alert_id, lead, domain=MAIL_DOMAIN): 1,
    }


async def test_a9_a_dispatcher_killed_mid_send_mails_each_recipient_once(
    dispatcher, kafka, api, acct
) -> None:
    fast, slow = f"fast-{acct}@acme.test", f"slow-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [fast, slow])
    dispatcher.smtp.handler.fail_recipient(slow, "451 4.3.0 try later")
    svc = dispatcher.services[NAME]
    try:
        before = [request(acct, [fast, slow]) for _ in range(6)]
        for req in before:
            await kafka.send(topics.ALERT_REQUESTS, req.profile_id, req)

        async def fast_done() -> bool:
            return len(alerts_to(dispatcher, fast)) == len(before)

        await eventually(fast_done)
        # Mails to `slow` are queued and being retried; some may be claimed right now.
        svc.kill()
        after = [request(acct, [fast, slow]) for _ in range(4)]
        for req in after + before[:2]:  # new requests, and redeliveries of old ones
            await kafka.send(topics.ALERT_REQUESTS, req.profile_id, req)
    finally:
        dispatcher.smtp.handler.fail_recipient(slow, None)
    svc.start()
    svc.wait_ready()
    every = before + after
    for req in every:
        outcome = await outcome_of(kafka, acct, req.alert_id)
        assert (outcome["type"], outcome["recipients"]) == ("sent", sorted([fast, slow]))
    for rcpt in (fast, slow):
        got = Counter(str(m["Message-ID"]) for m in alerts_to(dispatcher, rcpt))
        assert got == {message_id("alert", r.alert_id, rcpt, domain=MAIL_DOMAIN): 1 for r in every}
