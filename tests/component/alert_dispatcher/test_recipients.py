"""A1–A4 and A7 on save, on the real dispatcher: validation with dead letters and flow
status, the recipient opt-in lifecycle through the emailed links, and the "Sent to" list."""

from __future__ import annotations

import base64

from shared.contracts import topics
from tests.component.alert_dispatcher.conftest import (
    alerts_to,
    auth,
    confirmations,
    confirmations_to,
    confirmed_recipients,
    flow,
    link_in,
    outcome_of,
    request,
    save_flow,
)
from tests.conftest import eventually


async def _letters(kafka, account: str, flow_id: str) -> list[dict]:
    return [
        v
        for k, v in await kafka.read_all(topics.dlq(topics.FLOW_DEFINITIONS))
        if k == f"{account}:{flow_id}" and v
    ]


async def _sent_to(api, account: str, flow_id: str = "nps", step: str = "alert") -> dict:
    r = await api.get(f"/accounts/{account}/alerts/{flow_id}/{step}", headers=auth(account))
    assert r.status_code == 200, r.text
    return {x["email"]: x["status"] for x in r.json()["sent_to"]}


async def test_a1_invalid_recipients_are_rejected_naming_the_step_and_old_version_stays(
    dispatcher, kafka, api, acct
) -> None:
    lead = f"lead-{acct}@acme.test"
    await save_flow(kafka, flow(acct, "nps", [lead.upper(), lead]))
    six = [f"r{i}-{acct}@acme.test" for i in range(6)]
    await save_flow(kafka, flow(acct, "nps", six, version=2, step_id="notify"))
    await save_flow(kafka, flow(acct, "nps", ["not-an-address"], version=3, step_id="notify"))

    async def two_letters() -> list[dict]:
        got = await _letters(kafka, acct, "nps")
        return got if len(got) >= 2 else []

    letters = await eventually(two_letters)
    errors = sorted(v["error"] for v in letters)
    assert len(errors) == 2
    assert all("step 'notify'" in e for e in errors)
    assert any("1 to 5 recipients, got 6" in e for e in errors)
    assert any("'not-an-address'" in e for e in errors)
    assert letters[0]["source_topic"] == topics.FLOW_DEFINITIONS
    assert base64.b64decode(letters[0]["original"])

    status = (await api.get(f"/accounts/{acct}/flows/nps/alerts", headers=auth(acct))).json()
    assert status["status"] == "rejected" and status["version"] == 1
    assert [r["version"] for r in status["rejections"]] == [3, 2]
    assert "step 'notify'" in status["rejections"][0]["errors"][0]
    # Version 1 stays in force, its two spellings folded into one recipient, asked once.
    assert status["alert_actions"][0]["sent_to"] == [{"email": lead, "status": "unconfirmed"}]
    assert len(await confirmations(dispatcher, lead)) == 1
    assert confirmations_to(dispatcher, six[0]) == []  # a rejected version adds nobody


async def test_a7_forbidden_tag_is_rejected_on_save_naming_the_tag(
    dispatcher, kafka, api, acct
) -> None:
    lead = f"lead-{acct}@acme.test"
    bad = flow(acct, "coupon", [lead], body="Hi {{ person.first_name }} {% coupon_code 'X' %}")
    await save_flow(kafka, bad)
    letter = (await eventually(lambda: _letters(kafka, acct, "coupon")))[0]
    assert "step 'alert'" in letter["error"] and "'coupon_code' (dynamic coupon)" in letter["error"]
    status = (await api.get(f"/accounts/{acct}/flows/coupon/alerts", headers=auth(acct))).json()
    assert status["status"] == "rejected" and status["version"] is None
    assert "'coupon_code'" in status["rejections"][0]["errors"][0]
    assert confirmations_to(dispatcher, lead) == []  # a rejected version adds nobody


async def test_a3_one_confirmation_for_a_new_recipient_none_when_confirmed_elsewhere(
    dispatcher, kafka, api, acct
) -> None:
    lead, ops = f"lead-{acct}@acme.test", f"ops-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [lead])
    # Another flow adds the confirmed lead and a new address: only the new one is asked.
    await save_flow(kafka, flow(acct, "other", [lead, ops], step_id="cx"))
    await confirmations(dispatcher, ops)
    # Saving a new version with the same recipients asks nobody again.
    await save_flow(kafka, flow(acct, "other", [ops, lead], version=2, step_id="cx"))
    await eventually(lambda: _version(api, acct, "other", 2))
    assert len(confirmations_to(dispatcher, lead)) == 1
    assert len(confirmations_to(dispatcher, ops)) == 1
    assert await _sent_to(api, acct, "other", "cx") == {lead: "confirmed", ops: "unconfirmed"}
    listing = (await api.get(f"/accounts/{acct}/alert-recipients", headers=auth(acct))).json()
    assert {r["email"]: r["actions"] for r in listing["recipients"]} == {
        lead: ["nps/alert", "other/cx"],
        ops: ["other/cx"],
    }


async def test_a2_opt_in_is_per_account_and_email_and_needs_no_profile(
    dispatcher, kafka, api, acct, other_acct
) -> None:
    shared_address = f"shared-{acct}@acme.test"
    await confirmed_recipients(dispatcher, kafka, api, acct, [shared_address.upper()])
    # The same person added by another account is asked again: opt-in is per account.
    await save_flow(kafka, flow(other_acct, "nps", [shared_address]))
    await confirmations(dispatcher, shared_address, n=2)
    assert await _sent_to(api, acct) == {shared_address: "confirmed"}
    assert await _sent_to(api, other_acct) == {shared_address: "unconfirmed"}
    # No profile exists for the address anywhere: nothing was published about one.
    for topic in (topics.CONSENT_COMMANDS, topics.SUPPRESSION_COMMANDS):
        assert not [v for _, v in await kafka.read_all(topic) if shared_address in str(v)]


async def _version(api, account: str, flow_id: str, version: int) -> bool:
    r = await api.get(f"/accounts/{account}/flows/{flow_id}/alerts", headers=auth(account))
    return r.status_code == 200 and r.json()["version"] == version


async def test_a4_links_are_signed_idempotent_and_disabled_needs_re_adding(
    dispatcher, kafka, api, acct
) -> None:
    lead = f"lead-{acct}@acme.test"
    await save_flow(kafka, flow(acct, "nps", [lead]))
    first = (await confirmations(dispatcher, lead))[0]
    confirm = link_in(first, "confirm")
    assert (await api.post(confirm[:-4] + "AAAA")).status_code == 400  # tampered
    assert await _sent_to(api, acct) == {lead: "unconfirmed"}
    assert (await api.post(confirm)).status_code == 200
    assert (await api.post(confirm)).status_code == 200  # idempotent
    assert await _sent_to(api, acct) == {lead: "confirmed"}

    await kafka.send(topics.ALERT_REQUESTS, "p", request(acct, [lead]))
    mail = (await eventually(lambda: _async(alerts_to(dispatcher, lead))))[0]
    unsubscribe = link_in(mail, "unsubscribe")
    # Opening the link (as a mail scanner would) only shows the button.
    page = await api.get(unsubscribe)
    assert page.status_code == 200 and '<form class="actions" method="post">' in page.text
    assert await _sent_to(api, acct) == {lead: "confirmed"}
    assert (await api.get(unsubscribe[:-4] + "AAAA")).status_code == 400  # tampered
    assert (await api.post(unsubscribe)).status_code == 200
    assert (await api.post(unsubscribe)).status_code == 200  # idempotent
    assert await _sent_to(api, acct) == {lead: "disabled"}
    # The old confirmation link cannot bring a disabled recipient back.
    assert (await api.post(confirm)).status_code == 410
    assert await _sent_to(api, acct) == {lead: "disabled"}
    while_disabled = request(acct, [lead])
    await kafka.send(topics.ALERT_REQUESTS, "p", while_disabled)
    skipped = await outcome_of(kafka, acct, while_disabled.alert_id)
    assert skipped["type"] == "skipped"
    assert len(alerts_to(dispatcher, lead)) == 1

    # Removed, re-added: one new confirmation; confirming it brings alerts back.
    await save_flow(kafka, flow(acct, "nps", [f"other-{acct}@acme.test"], version=2))
    await save_flow(kafka, flow(acct, "nps", [lead], version=3))
    second = (await confirmations(dispatcher, lead, 2))[1]
    assert await _sent_to(api, acct) == {lead: "unconfirmed"}
    assert (await api.post(confirm)).status_code == 410
    assert (await api.post(link_in(second, "confirm"))).status_code == 200
    assert await _sent_to(api, acct) == {lead: "confirmed"}
    again = request(acct, [lead])
    await kafka.send(topics.ALERT_REQUESTS, "p", again)
    assert (await outcome_of(kafka, acct, again.alert_id))["type"] == "sent"
    assert len(confirmations_to(dispatcher, lead)) == 2

    # Alert opt-in is not profile consent: nothing was asked of the consent or
    # suppression services about this address.
    for topic in (topics.CONSENT_COMMANDS, topics.SUPPRESSION_COMMANDS):
        assert not [v for _, v in await kafka.read_all(topic) if v and lead in str(v)]


async def _async(value):
    return value
