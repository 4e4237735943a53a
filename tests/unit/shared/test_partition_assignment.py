"""Partitions dealt over processes first (X8): with several members of a group in each
replica, no replica is left without partitions while replicas ≤ partitions."""

from __future__ import annotations

from collections import Counter

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from hypothesis import given
from hypothesis import strategies as st

from shared.messaging.assignment import ProcessSpreadAssignor, assignors, deal

# Member ids as Kafka makes them (client id and a random suffix), in any number per
# process, several processes, any partition count (including fewer than the members).
MEMBERS = st.dictionaries(
    st.text("abcdef0123456789-", min_size=1, max_size=12).map(lambda s: f"consentflow-x-{s}"),
    st.sampled_from(["p1", "p2", "p3", "p4", "p5"]),
    min_size=1,
    max_size=24,
)


@given(MEMBERS, st.integers(0, 48))
def test_x8_every_partition_once_and_every_process_its_share(members, count) -> None:
    dealt = deal(range(count), members)
    assert sorted(p for ps in dealt.values() for p in ps) == list(range(count))
    assert set(dealt) == set(members)
    processes = sorted(set(members.values()))
    per_process = Counter({p: 0 for p in processes})
    for member, parts in dealt.items():
        per_process[members[member]] += len(parts)
    assert max(per_process.values()) - min(per_process.values()) <= 1
    if count >= len(processes):
        assert min(per_process.values()) >= 1
    for process in processes:
        own = [len(dealt[m]) for m in members if members[m] == process]
        assert max(own) - min(own) <= 1


def test_x8_two_replicas_of_four_members_on_two_partitions_each_hold_one() -> None:
    """The case round-robin gets wrong about half the time: eight members, two
    partitions; ordered by their random ids, both could go to one replica's members."""
    members = {f"m-{i}": "replica-a" if i % 2 else "replica-b" for i in (7, 1, 3, 5, 0, 2, 4, 6)}
    dealt = deal([0, 1], members)
    held = Counter(members[m] for m, parts in dealt.items() for _ in parts)
    assert held == {"replica-a": 1, "replica-b": 1}


class _Cluster:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.partitions[topic])) if topic in self.partitions else None


def test_x8_the_assignor_tags_its_members_and_answers_the_protocol() -> None:
    spread, fallback = assignors("replica-a")
    assert issubclass(spread, ProcessSpreadAssignor) and fallback.name == "roundrobin"
    assert spread.metadata({"events"}).user_data == b"replica-a"
    other, _ = assignors("replica-b")
    members = {
        "m1": spread.metadata({"events"}),
        "m2": spread.metadata({"events"}),
        "m3": other.metadata({"events"}),
        "m4": ConsumerProtocolMemberMetadata(0, ["other-topic"], b"replica-b"),
    }
    answer = spread.assign(_Cluster({"events": 2, "other-topic": 1}), members)
    got = {m: [(a.topic, a.partitions) for a in answer[m].assignment] for m in members}
    assert got["m3"] == [("events", [1])]
    assert got["m4"] == [("other-topic", [0])]
    assert sorted(got["m1"] + got["m2"]) == [("events", [0])]
