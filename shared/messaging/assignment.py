"""How a consumer group's partitions are shared: over processes first, then over the
members within each process.

A service's main input is read by several members of its group in each process
(`KAFKA_INPUT_CONSUMERS`). Kafka's round-robin assignor orders members by their random
ids, so with more members than partitions a whole replica could be left with none: it
would then idle, and `/readyz` would answer 503 for it (X8) although the replicas are
no more than the partitions. Here each member tells the group which process it is in
(the protocol's user data), and partitions are dealt to the processes in turn, each
process's share going to its members in turn. So as long as there are at least as many
partitions as replicas, every replica holds some, and a replica's members hold
partitions only once every replica has one.

Members that do not know this protocol (a replica of an earlier version during a
rolling upgrade) offer only round-robin; the group then agrees on round-robin, which
every member offers second.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)


def deal(partitions: Iterable[int], members: Mapping[str, str]) -> dict[str, list[int]]:
    """Deal `partitions` to `members` (member id → process): in turns over the processes
    (in order), each process's turn going to its next member (in order). Every
    partition goes to exactly one member; processes differ by at most one partition,
    and so do the members of one process."""
    by_process: dict[str, list[str]] = defaultdict(list)
    for member, process in sorted(members.items()):
        by_process[process].append(member)
    processes = sorted(by_process)
    process_turn = {p: 0 for p in processes}
    dealt: dict[str, list[int]] = {m: [] for m in members}
    for n, partition in enumerate(sorted(partitions)):
        process = processes[n % len(processes)]
        own = by_process[process]
        dealt[own[process_turn[process] % len(own)]].append(partition)
        process_turn[process] += 1
    return dealt


class ProcessSpreadAssignor(AbstractPartitionAssignor):
    """`deal` as a Kafka partition assignor; `process` is the member's process (set on
    a subclass per process, `assignors`)."""

    name = "consentflow-spread"
    version = 0
    process = b""

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, sorted(topics), cls.process)

    @classmethod
    def assign(
        cls, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for m in members.values() for t in m.subscription})
        per_member: dict[str, list[ConsumerProtocolMemberAssignment.Assignment]] = {
            m: [] for m in members
        }
        for topic in topics:
            partitions = cluster.partitions_for_topic(topic) or set()
            subscribed = {
                member: (meta.user_data or member.encode()).decode(errors="replace")
                for member, meta in members.items()
                if topic in meta.subscription
            }
            for member, dealt in deal(partitions, subscribed).items():
                if dealt:
                    per_member[member].append(
                        ConsumerProtocolMemberAssignment.Assignment(topic, dealt)
                    )
        return {
            member: ConsumerProtocolMemberAssignment(cls.version, assigned, b"")
            for member, assigned in per_member.items()
        }

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        return None


def assignors(process: str | None = None) -> tuple[type[AbstractPartitionAssignor], ...]:
    """The assignors a process's consumers offer, in order of preference: the spread
    over processes, tagged with `process` (a fresh id by default), then round-robin."""
    tag = (process or uuid.uuid4().hex).encode()
    spread = type("ProcessSpreadAssignor", (ProcessSpreadAssignor,), {"process": tag})
    return (spread, RoundRobinPartitionAssignor)
