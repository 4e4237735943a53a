"""One contract for the consent repository port (`services/consent/ports.py`), run
against the in-memory fake the unit tests use and the PostgreSQL repository, so the
fake cannot drift from what the database does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.consent.adapters.repository import PostgresConsentRepository
from services.consent.domain.model import Act, HistoryEntry, Policy
from services.consent.domain.rules import decide
from services.consent.ports import (
    AccountSettings,
    Confirmation,
    ConsentRepository,
    HistoryRow,
    Key,
    KnownProfile,
    SuppressionList,
)
from shared.db.errors import TRANSIENT_DB_ERRORS
from tests.component.repository_backends import migrated_database
from tests.unit.consent.fakes import InMemoryConsentRepository

A = "acme"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["fake", "postgres"])
async def repo(request, stack) -> AsyncIterator[ConsentRepository]:
    if request.param == "fake":
        yield InMemoryConsentRepository()
        return
    async with migrated_database(stack.dsn, "consent") as db, db.uow() as uow:
        yield PostgresConsentRepository(uow)


def subscribed(state, n: int = 1, phone: str | None = None):
    act = Act(
        act_id=f"a{n}",
        action="subscribe",
        channel="sms" if phone else "email",
        act_at=T0,
        phone_number=phone,
        evidence="form" if phone else None,
    )
    return decide(state, act, Policy(email_double_opt_in=False), T0 + timedelta(seconds=1))


async def test_lock_creates_missing_profiles_empty_and_save_round_trips(repo) -> None:
    key = Key(A, "p1")
    stored = (await repo.lock_states([key, key]))[key]
    assert stored.state.status("email") == "never_subscribed" and stored.profile == {}
    stored.state = subscribed(stored.state).state
    stored.profile = {"id": "p1", "email": "p1@example.test"}
    await repo.save_states({key: stored})
    again = (await repo.lock_states([key]))[key]
    assert again.state.status("email") == "subscribed"
    assert again.profile == {"id": "p1", "email": "p1@example.test"}
    assert await repo.profile_email(key) == "p1@example.test"
    assert await repo.profile_email(Key(A, "nobody")) is None


async def test_i1_c6_profiles_by_identity_find_the_saved_number_and_address(repo) -> None:
    phone = "+4915112345678"
    got = await repo.lock_states([Key(A, "p2"), Key(A, "p1")])
    for stored in got.values():
        stored.state = subscribed(stored.state, phone=phone).state
    got[Key(A, "p1")].profile = {"id": "p1", "email": "José@Bücher.example"}
    await repo.save_states(got)
    number, address = f"phone:{phone}", "email:josé@xn--bcher-kva.example"
    found = await repo.profiles_by_identity([(A, number), (A, "phone:+1555"), (A, address)])
    assert found == {(A, number): ["p1", "p2"], (A, address): ["p1"]}


async def test_i1_c6_identity_acts_are_kept_once_oldest_first(repo) -> None:
    from datetime import UTC, datetime

    from services.consent.domain.model import Act
    from services.consent.ports import IdentityAct

    at = datetime(2026, 1, 1, tzinfo=UTC)
    late = Act("b", "unsubscribe", "sms", at.replace(hour=2), phone_number="+15555550100")
    early = Act("a", "subscribe", "sms", at, phone_number="+15555550100", number_only=True)
    key = "phone:+15555550100"
    await repo.lock_identities([(A, key)])
    await repo.add_identity_acts([IdentityAct(A, key, late), IdentityAct(A, key, early)])
    await repo.add_identity_acts([IdentityAct(A, key, late)])  # a redelivery
    assert await repo.identity_acts([(A, key), (A, "email:x@y.example")]) == {
        (A, key): [early, late]
    }


async def test_settings_are_merged_field_by_field(repo) -> None:
    assert await repo.account_settings([A]) == {}
    await repo.save_account_settings(A, {"email_double_opt_in": True})
    await repo.save_account_settings(A, {"from_email": "news@acme.test"})
    assert (await repo.account_settings([A, "other"])) == {
        A: AccountSettings(email_double_opt_in=True, from_email="news@acme.test")
    }
    assert await repo.page_settings([A]) == {}
    await repo.save_page_settings(A, {"display_name": "Acme", "list_names": {"n": "News"}})
    await repo.save_page_settings(A, {"optout_confirmation_email": True})
    pages = (await repo.page_settings([A]))[A]
    assert (pages.display_name, pages.list_names) == ("Acme", {"n": "News"})
    assert pages.optout_confirmation_email is True


async def test_suppression_read_model_keeps_the_newest_list(repo) -> None:
    key = Key(A, "p1")
    new = [{"channel": "email", "reason": "manual", "list_id": None}]
    await repo.save_suppressions([SuppressionList(A, "p1", new, T0 + timedelta(minutes=1))])
    await repo.save_suppressions([SuppressionList(A, "p1", [], T0)])  # late, older: ignored
    assert await repo.suppressions([key, Key(A, "p9")]) == {key: new}


async def test_remember_profiles_merges_attributes_and_ignores_nulls(repo) -> None:
    key = Key(A, "p1")
    await repo.remember_profiles([KnownProfile(A, "p1", {"id": "p1", "email": "a@x.test"})])
    await repo.remember_profiles(
        [KnownProfile(A, "p1", {"id": "p1", "email": None, "first_name": "Ann"})]
    )
    stored = (await repo.lock_states([key]))[key]
    assert stored.profile == {"id": "p1", "email": "a@x.test", "first_name": "Ann"}
    assert await repo.profile_email(key) == "a@x.test"


async def test_confirmations_are_added_once_and_claimed_once(repo) -> None:
    c = Confirmation("c1", A, "p1", "email", None, "group", "form", "p1@example.test")
    assert await repo.add_confirmations([c]) == {"c1"}
    assert await repo.add_confirmations([c]) == set()
    got = await repo.confirmation("c1")
    assert got is not None and got.requested_at is not None and got.confirmed_at is None
    assert (got.account_id, got.profile_id, got.email) == (A, "p1", "p1@example.test")
    assert await repo.claim_confirmation("c1") is True
    assert await repo.claim_confirmation("c1") is False
    assert (await repo.confirmation("c1")).confirmed_at is not None
    assert await repo.confirmation("unknown") is None


async def test_history_is_appended(repo) -> None:
    entry = HistoryEntry(
        slot="email",
        action="subscribe",
        result="applied",
        status="subscribed",
        consented_at=T0,
        act_at=T0,
        method="api",
        act_id="a1",
    )
    await repo.append_history([HistoryRow(A, "p1", entry)])
    await repo.append_history([])


async def test_lifted_erasures_are_no_longer_found(repo) -> None:
    assert await repo.erased_hashes([(A, "h1")]) == set()
    await repo.lift_erasure([(A, "h1")])
    assert await repo.erased_hashes([]) == set()


def _receipt(pid: str, n: int, prev: str | None, personal: dict | None = None):
    from services.consent.domain.receipts import Receipt, digest

    body = {"receipt_id": f"r-{pid}-{n}", "sequence": n, "previous_hash": prev, "é": "ü"}
    return Receipt(A, pid, body, digest(body), personal)


async def test_c15_c16_receipts_are_appended_in_order_with_their_head(repo) -> None:
    from services.consent.domain.receipts import Head, HistoryLink

    key = Key(A, "p1")
    assert await repo.receipt_heads([key]) == {}
    assert (await repo.receipt_chain(key)).receipts == []
    first = _receipt("p1", 1, None, {"email": "p1@example.test"})
    second = _receipt("p1", 2, first.hash)
    other = _receipt("p2", 1, None)
    await repo.append_receipts([first, other])
    await repo.append_receipts([second])
    await repo.append_receipts([])
    assert await repo.receipt_heads([key, Key(A, "p2"), Key(A, "p9")]) == {
        key: Head(2, second.hash),
        Key(A, "p2"): Head(1, other.hash),
    }
    entry = HistoryEntry(
        slot="email", action="subscribe", result="applied", status="subscribed",
        consented_at=T0, act_at=T0, method="api", act_id="a1",
    )  # fmt: skip
    await repo.append_history(
        [HistoryRow(A, "p1", entry, first.receipt_id), HistoryRow(A, "p1", entry)]
    )
    chain = await repo.receipt_chain(key)
    assert chain.receipts == [first, second]  # bodies and personal values round-trip
    assert chain.head == Head(2, second.hash)
    assert chain.history == [HistoryLink(first.receipt_id, "email", "subscribed", "a1")]
    assert await repo.receipt_profiles(A) == ["p1", "p2"]
    assert await repo.receipt_profiles("other") == []


async def test_x2_a_profile_created_by_another_batch_meanwhile_is_retried_not_lost(stack) -> None:
    """PostgreSQL only: two batches both find no row for a new profile (no row is locked
    for a missing one). The first creates it and commits; the second's write must not
    overwrite it, and must fail as a transient error, so that its batch is retried (and
    then sees the row) instead of being dead-lettered as a bad message."""
    key = Key(A, "new")
    async with migrated_database(stack.dsn, "consent") as db:
        async with db.uow() as first, db.uow() as second:
            one, two = PostgresConsentRepository(first), PostgresConsentRepository(second)
            mine = (await one.lock_states([key]))[key]
            theirs = (await two.lock_states([key]))[key]
            mine.state = subscribed(mine.state, 1).state
            await one.save_states({key: mine})
            await first.commit()
            theirs.state = subscribed(theirs.state, 2).state
            with pytest.raises(TRANSIENT_DB_ERRORS) as caught:
                await two.save_states({key: theirs})
            assert "created concurrently" in str(caught.value)
        async with db.uow() as third:
            kept = (await PostgresConsentRepository(third).lock_states([key]))[key]
        assert [e.act.act_id for e in kept.state.log] == ["a1"]
