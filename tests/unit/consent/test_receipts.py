"""Consent receipts (C15), their hash chain (C16) and explain (C17), over the in-memory
ports: what an applied act leaves, what it does not, and that tampering is named."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.consent import handlers
from services.consent.domain.explain import explain
from services.consent.domain.reachability import can_receive
from services.consent.domain.receipts import (
    Head,
    Receipt,
    canonical,
    digest,
    in_force,
    sorted_canonical,
    verify,
)
from services.consent.pages.confirm import _confirm_act
from services.consent.ports import Key
from shared.contracts import ConsentReceipt, topics
from shared.privacy import hash_secret, subject_hash
from tests.unit.consent.fakes import FakeOutbox, FakeWork, InMemoryConsentRepository
from tests.unit.consent.test_handlers import ACCOUNT, DOUBLE, SINGLE, command, run
from tests.unit.consent.test_people_properties import deliver, payloads, worlds
from tools.contracts_gen import DEFAULT_DIR

SCHEMA = json.loads((DEFAULT_DIR / "schemas" / "ConsentReceipt.schema.json").read_text())
SECRET = hash_secret(SINGLE)


def keyed(kind: str, value: str) -> str:
    return subject_hash(SECRET, kind, value)


async def chain_of(repo: InMemoryConsentRepository, pid: str) -> Any:
    return await repo.receipt_chain(Key(ACCOUNT, pid))


async def averdict(repo: InMemoryConsentRepository, pid: str) -> Any:
    chain = await chain_of(repo, pid)
    return verify(pid, chain.receipts, chain.head, chain.history, keyed)


async def test_c15_applied_acts_yield_receipts_valid_against_the_published_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    cmds = [
        command("p1", notice="https://acme.example/privacy#v3", jurisdiction="EU",
                consented_at=t0, phone="+15555550100"),
        command("p1", "subscribe", channel="sms", evidence="form 12, signed",
                phone="+15555550100", consented_at=t0 + timedelta(minutes=1)),
        command("p1", "unsubscribe", list_id="news", consented_at=t0 + timedelta(minutes=2)),
    ]  # fmt: skip
    await run(repo, outbox, *cmds)
    chain = await chain_of(repo, "p1")
    assert [r.sequence for r in chain.receipts] == [1, 2, 3]
    for r in chain.receipts:
        jsonschema.validate(json.loads(json.dumps(r.document())), SCHEMA)
        ConsentReceipt.model_validate(r.document())
    by_act = {r.body["act_id"]: r for r in chain.receipts}
    first, sms = by_act[cmds[0].command_id], by_act[cmds[1].command_id]
    assert sms.body["previous_hash"] == chain.receipts[sms.sequence - 2].hash
    assert first.body["notice"] == "https://acme.example/privacy#v3"
    assert first.body["jurisdiction"] == "EU"
    assert first.body["controller"] == {"id": ACCOUNT, "name": ACCOUNT}
    assert first.body["subject"]["email_hash"] == keyed("email", "p1@example.test")
    assert first.body["subject"]["phone_hash"] == keyed("phone", "+15555550100")
    assert chain.receipts[0].body["previous_hash"] is None
    assert sms.body["evidence_hash"] == keyed("evidence", "form 12, signed")
    assert sms.personal == {
        "email": "p1@example.test", "phone_number": "+15555550100", "evidence": "form 12, signed"
    }  # fmt: skip
    # Nothing personal is hashed into the chain: the receipt body names none of it.
    assert "p1@example.test" not in json.dumps(sms.body) and "+1555" not in json.dumps(sms.body)
    # Every applied history row names its receipt; the change event carries it (C17).
    applied = [h for h in repo.history if h.entry.result == "applied"]
    assert {h.receipt_id for h in applied} == {r.receipt_id for r in chain.receipts}
    changes = outbox.on(topics.CONSENT_CHANGES)
    assert {c.receipt_id for c in changes} <= {r.receipt_id for r in chain.receipts}
    assert all(c.receipt_id for c in changes)


async def test_c15_stale_rejected_and_pending_acts_yield_no_receipt() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await run(repo, outbox, command("p1", "unsubscribe", consented_at=t0))
    await run(repo, outbox, command("p1", "resubscribe", consented_at=t0 + timedelta(minutes=1)))
    await run(repo, outbox, command("p1", consented_at=t0 - timedelta(minutes=1)))  # stale
    await run(repo, outbox, command("p2"), settings=DOUBLE)  # pending confirmation
    results = sorted({h.entry.result for h in repo.history})
    assert results == ["applied", "pending_confirmation", "rejected", "stale"]
    assert len((await chain_of(repo, "p1")).receipts) == 1
    assert (await chain_of(repo, "p2")).receipts == []


async def test_c15_x2_a_redelivered_act_adds_no_receipt() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    cmd = command("p1")
    await run(repo, outbox, cmd)
    await run(repo, outbox, cmd)
    assert len((await chain_of(repo, "p1")).receipts) == 1


async def test_c15_i1_an_address_opt_out_gives_every_profile_carrying_it_a_receipt() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await run(repo, outbox, command("a", email="ada@example.org", consented_at=t0))
    await run(repo, outbox, command("b", email="ADA@example.org", consented_at=t0))
    stop = command(
        "a", "unsubscribe", email="ada@example.org", consented_at=t0 + timedelta(minutes=1)
    )
    await run(repo, outbox, stop)
    for pid in ("a", "b"):
        chain = await chain_of(repo, pid)
        assert [r.body["status"] for r in chain.receipts] == ["subscribed", "unsubscribed"]
        assert chain.receipts[-1].body["act_id"] == stop.command_id
        assert (await averdict(repo, pid)).ok
    ids = {(await chain_of(repo, p)).receipts[-1].receipt_id for p in ("a", "b")}
    assert len(ids) == 2  # X2: one receipt id per profile and act


async def test_c15_c8_a_double_opt_in_receipt_carries_the_pending_notice_and_evidence() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    cmd = command("p1", notice="signup-form-v7", jurisdiction="US-CA", evidence="ticket 42")
    await run(repo, outbox, cmd, settings=DOUBLE)
    (pending,) = repo.confirmations.values()
    assert (pending.notice, pending.jurisdiction, pending.evidence) == (
        "signup-form-v7", "US-CA", "ticket 42"
    )  # fmt: skip
    act = _confirm_act({"k": pending.confirmation_id, "s": "group"}, pending, datetime.now(UTC))
    req = handlers.Request(ACCOUNT, "p1", act, receipt_evidence=pending.evidence)
    await handlers.apply_acts(FakeWork(repo, outbox, DOUBLE), [req])
    (r,) = (await chain_of(repo, "p1")).receipts
    assert (r.body["notice"], r.body["jurisdiction"]) == ("signup-form-v7", "US-CA")
    assert r.body["evidence_hash"] == keyed("evidence", "ticket 42")
    assert r.body["act_id"] == f"confirm:{pending.confirmation_id}"


def test_c16_canonical_form_is_rfc8785() -> None:
    body = {"b": [1, "é", None], "a": {"z": True, "y": "\u2028"}}
    assert canonical(body) == rfc8785.dumps(body)
    assert canonical(body) == '{"a":{"y":"\u2028","z":true},"b":[1,"é",null]}'.encode()
    assert digest(body) == digest(json.loads(json.dumps(body)))  # as stored and read back


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
VALUE = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | TEXT


def _sorted(value: Any) -> Any:
    """`value` with every object's keys in sorted order, as `receipt` builds a body."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(
        st.text(st.characters(max_codepoint=127), max_size=8),
        VALUE | st.lists(VALUE, max_size=3) | st.dictionaries(st.sampled_from("abcXYZ_"), VALUE),
        max_size=8,
    )
)
def test_c16_a_sorted_body_is_written_in_its_rfc8785_form(body) -> None:
    assert sorted_canonical(_sorted(body)) == rfc8785.dumps(body)


def _keys_sorted(value: Any) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(_keys_sorted(v) for v in value.values())
    if isinstance(value, list):
        return all(_keys_sorted(v) for v in value)
    return True


async def _three(repo: InMemoryConsentRepository) -> list[Receipt]:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    for n, action in enumerate(("subscribe", "unsubscribe", "resubscribe")):
        at = t0 + timedelta(minutes=n)
        await run(repo, FakeOutbox(), command("p1", action, evidence="e", consented_at=at))
    return (await chain_of(repo, "p1")).receipts


async def test_c16_an_untouched_chain_verifies_and_each_tampering_is_named() -> None:
    repo = InMemoryConsentRepository()
    rs = await _three(repo)
    chain = await chain_of(repo, "p1")
    assert verify("p1", rs, chain.head, chain.history, keyed).ok
    head = chain.head

    def failure(receipts: list[Receipt], head: Head | None = head) -> Any:
        got = verify("p1", receipts, head, None, keyed)
        assert not got.ok
        return got.failure

    edited = replace(rs[1], body={**rs[1].body, "status": "subscribed"})
    f = failure([rs[0], edited, rs[2]])
    assert (f.receipt_id, f.sequence) == (rs[1].receipt_id, 2) and "edited" in f.reason
    f = failure([rs[0], rs[2]])  # a receipt removed
    assert f.sequence == 2 and "removed" in f.reason
    f = failure([rs[0], rs[2], rs[1]])  # reordered
    assert f.receipt_id == rs[2].receipt_id and "reordered" in f.reason
    body = {**rs[1].body, "status": "subscribed"}
    f = failure([rs[0], replace(rs[1], body=body, hash=digest(body)), rs[2]])  # re-hashed
    assert f.receipt_id == rs[2].receipt_id and "previous_hash" in f.reason
    body = {**rs[2].body, "method": "import"}
    f = failure([rs[0], rs[1], replace(rs[2], body=body, hash=digest(body))])  # the last one
    assert f.receipt_id == rs[2].receipt_id and "head" in f.reason
    f = failure(rs[:2])  # the last one removed
    assert "head" in f.reason
    f = failure([rs[0], replace(rs[1], personal={**rs[1].personal, "evidence": "forged"}), rs[2]])
    assert f.sequence == 2 and "evidence" in f.reason


async def test_c16_a_history_row_edited_or_removed_is_named_by_its_receipt() -> None:
    repo = InMemoryConsentRepository()
    rs = await _three(repo)
    chain = await chain_of(repo, "p1")
    links = chain.history
    edited = [links[0], replace(links[1], status="subscribed"), *links[2:]]
    got = verify("p1", rs, chain.head, edited, keyed)
    assert got.failure.receipt_id == rs[1].receipt_id and "history" in got.failure.reason
    got = verify("p1", rs, chain.head, [links[0], *links[2:]], keyed)
    assert got.failure.receipt_id == rs[1].receipt_id


async def test_c17_explain_names_the_receipt_in_force_and_equals_can_receive() -> None:
    repo, outbox = InMemoryConsentRepository(), FakeOutbox()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    await run(repo, outbox, command("p1", consented_at=t0))
    scoped = command("p1", "unsubscribe", scope={"level": "client", "client_id": "c1"},
                     consented_at=t0 + timedelta(minutes=1))  # fmt: skip
    await run(repo, outbox, scoped)
    state = repo.rows[Key(ACCOUNT, "p1")].state
    rs = (await chain_of(repo, "p1")).receipts
    sups = [{"channel": "email", "reason": "hard_bounce", "list_id": "news", "since": "t"}]
    ok = explain(state, sups, rs, "email")
    assert ok["can_receive"] is True and ok["receipt_in_force"]["receipt_id"] == rs[0].receipt_id
    blocked = explain(state, sups, rs, "email", client_id="c1")
    assert blocked["can_receive"] is False and blocked["blocked"] == "opted out (client:c1)"
    assert blocked["receipt_in_force"]["act_id"] == scoped.command_id
    assert blocked["facts"]["opt_outs"] == ["client:c1"]
    listed = explain(state, sups, rs, "email", list_id="news")
    assert listed["can_receive"] is False and listed["facts"]["suppressions"][0]["reason"] == (
        "hard_bounce"
    )
    held = explain(state, [], rs, "email", erased=True)
    assert held["can_receive"] is False and held["facts"]["erased_hold"] is True
    for answer, where in ((ok, {}), (blocked, {"client_id": "c1"}), (listed, {"list_id": "news"})):
        assert answer["can_receive"] == can_receive(state, sups, "email", **where)


# --- the property: chains verify, explain equals can_receive -------------------------

QUERIES = (
    ("email", "marketing", None),
    ("email", "marketing", "news"),
    ("sms", "marketing", None),
    ("sms", "transactional", None),
    ("push", "marketing", None),
)


def check_chains_verify_and_explain_agrees(repo: InMemoryConsentRepository, pids: list[str]):
    sups = [{"channel": "email", "reason": "manual", "list_id": "news", "since": None}]
    for pid in pids:
        key = Key(ACCOUNT, pid)
        if key not in repo.rows:
            continue
        chain = asyncio.run(repo.receipt_chain(key))
        got = verify(pid, chain.receipts, chain.head, chain.history, keyed)
        assert got.ok, got.to_json()
        for r in chain.receipts:  # C16: each body hashed in the form `verify` recomputes
            assert _keys_sorted(r.body) and r.canonical == canonical(r.body)
        state = repo.rows[key].state
        for channel, purpose, list_id in QUERIES:
            answer = explain(state, sups, chain.receipts, channel, purpose, list_id)
            slot = answer["slot"]
            assert answer["can_receive"] == can_receive(state, sups, slot, list_id), answer
        # The email consent in force is what its receipt in force says (C17).
        status = state.status("email")
        found = in_force(chain.receipts, "email", status)
        if status != "never_subscribed":
            assert found is not None and found.body["purposes"], (pid, status)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=worlds())
def test_c16_c17_generated_people_chains_verify_and_explain_equals_can_receive(world) -> None:
    cards, inputs, rng = world
    t0 = datetime.now(UTC) - timedelta(days=1)
    repo, _ = asyncio.run(deliver(payloads(cards, inputs, t0), rng))
    check_chains_verify_and_explain_agrees(repo, [c.profile_id for c in cards])
