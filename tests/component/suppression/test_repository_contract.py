"""One contract for the repositories of the suppression unit of work
(`services/suppression/ports.py`: `profiles`, `history`), run against the in-memory work
the unit tests use and the PostgreSQL work `bootstrap` binds, so the fakes cannot drift
from what the database does."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.suppression.bootstrap import bootstrap
from services.suppression.domain.rules import Address, Suppression, SuppressionState
from services.suppression.ports import HistoryRow, Key, SuppressionProfiles, SuppressionWork
from shared.settings import Settings
from tests.component.repository_backends import migrated_database
from tests.unit.suppression import fakes

A = "acme"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = Key(A, "p1")


@pytest.fixture(params=["fake", "postgres"])
async def work(request, stack) -> AsyncIterator[SuppressionWork]:
    if request.param == "fake":
        yield fakes.bootstrap(Settings())(None)
        return
    async with migrated_database(stack.dsn, "suppression") as db, db.uow() as uow:
        yield bootstrap(Settings())(uow)


@pytest.fixture
def repo(work: SuppressionWork) -> SuppressionProfiles:
    return work.profiles


def sup(reason: str, minutes: int, list_id: str | None = None) -> Suppression:
    return Suppression("email", reason, list_id, T0 + timedelta(minutes=minutes))


async def test_lock_creates_missing_profiles_empty(repo) -> None:
    stored = (await repo.lock([KEY, KEY]))[KEY]
    assert stored.state == SuppressionState() and stored.profile == {}


async def test_save_writes_the_difference_and_lock_reads_it_back_in_time_order(repo) -> None:
    stored = (await repo.lock([KEY]))[KEY]
    before = {KEY: stored.state}
    stored.state = SuppressionState(
        (sup("manual", 2), sup("hard_bounce", 1), sup("spam_complaint", 3, "news")),
        soft_bounces=2,
        list_bounces={"news": 1},
    )
    stored.profile = {"id": "p1", "email": "p1@example.test"}
    await repo.save(before, {KEY: stored}, {KEY: "cmd-1"})
    again = (await repo.lock([KEY]))[KEY]
    assert [s.reason for s in again.state.suppressions] == [
        "hard_bounce",
        "manual",
        "spam_complaint",
    ]
    assert again.state.suppressions[2].list_id == "news"
    assert (again.state.soft_bounces, dict(again.state.list_bounces)) == (2, {"news": 1})
    assert again.profile == {"id": "p1", "email": "p1@example.test"}
    before = {KEY: again.state}
    again.state = SuppressionState((sup("manual", 2),))
    await repo.save(before, {KEY: again}, {KEY: "cmd-2"})
    assert [s.reason for s in (await repo.lock([KEY]))[KEY].state.suppressions] == ["manual"]


async def test_liftable_means_a_spam_complaint_or_the_global_manual_suppression(repo) -> None:
    keys = [Key(A, p) for p in ("spam", "manual", "list-manual", "bounce", "none")]
    stored = await repo.lock(keys)
    before = {k: v.state for k, v in stored.items()}
    given = {
        "spam": sup("spam_complaint", 1, "news"),
        "manual": sup("manual", 1),
        "list-manual": sup("manual", 1, "news"),
        "bounce": sup("hard_bounce", 1),
    }
    for key, s in stored.items():
        if key.profile_id in given:
            s.state = SuppressionState((given[key.profile_id],))
    await repo.save(before, stored, {k: "cmd" for k in keys})
    assert await repo.with_liftable(keys) == {Key(A, "spam"), Key(A, "manual")}


async def test_history_is_appended(work) -> None:
    await work.history.append([HistoryRow(A, "p1", "suppressed", "email", "manual", None, "c1")])
    await work.history.append([])


async def test_i1_carriers_are_the_profiles_holding_any_spelling_of_an_address(repo) -> None:
    spelled = {
        "nfc": {"email": "Ada@Bücher.de", "phone_number": "+12125550100"},
        "puny": {"email": " ada@xn--bcher-kva.de"},
        "nfd": {"email": unicodedata.normalize("NFD", "ADA@BÜCHER.DE")},
        "other": {"email": "ada@example.test", "phone_number": "+12125550101"},
    }
    keys = [Key(A, p) for p in spelled] + [Key("globex", "nfc")]
    stored = await repo.lock(keys)
    before = {k: v.state for k, v in stored.items()}
    for key, s in stored.items():
        s.profile = {"id": key.profile_id, **spelled[key.profile_id]}
    await repo.save(before, stored, {})
    email = Address(A, "email", "ada@xn--bcher-kva.de")
    phone = Address(A, "sms", "+12125550100")
    nobody = Address(A, "email", "nobody@example.test")
    got = await repo.carriers([email, phone, nobody])
    assert got == {
        email: {Key(A, "nfc"), Key(A, "puny"), Key(A, "nfd")},
        phone: {Key(A, "nfc")},
    }
