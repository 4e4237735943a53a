"""X7 settings and the record-header rules (X1, X2), without a broker."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.health import Component
from shared.messaging.clients import connection_options
from shared.messaging.headers import BadHeaders, read_trace, valid_traceparent
from shared.settings import Settings
from tools.contracts_gen import built

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def record(headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(
        topic="profile-events",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"p",
        value=b"{}",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=2,
        headers=headers,
    )


def test_x7_sasl_ssl_with_scram_reaches_every_client() -> None:
    settings = Settings(
        kafka_bootstrap_servers="kafka-1:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="consentflow",
        kafka_sasl_password="s3cret",
    )
    options = connection_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "consentflow"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["ssl_context"].check_hostname


def test_x7_plaintext_has_no_tls_or_sasl() -> None:
    options = connection_options(Settings())
    assert options["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in options and "sasl_mechanism" not in options


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_x7_sasl_without_credentials_refuses_to_start_naming_the_settings(protocol: str) -> None:
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Settings(kafka_security_protocol=protocol)


def test_x7_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"):
        Settings(kafka_ssl_certfile="/etc/kafka/client.pem")


def test_x7_topic_and_group_prefixes() -> None:
    settings = Settings(kafka_topic_prefix="team-a.", kafka_group_prefix="team-a.")
    assert settings.kafka_topic("profile-events") == "team-a.profile-events"
    assert settings.kafka_group("flow_executor.profile-events") == (
        "team-a.consentflow.flow_executor.profile-events"
    )
    assert Settings().kafka_group("x") == "consentflow.x"


def test_x2_correlation_and_trace_context_are_read_and_carried() -> None:
    trace = read_trace(record([("correlation_id", b"req-1"), ("traceparent", TP.encode())]))
    assert trace.headers() == {"correlation_id": "req-1", "traceparent": TP}


def test_x2_record_without_correlation_id_gets_one_from_its_trace() -> None:
    assert read_trace(record([("traceparent", TP.encode())])).correlation_id == TP.split("-")[1]
    assert len(read_trace(record([])).correlation_id) == 32


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ([("traceparent", b"\xff\xfe")], "not_utf8"),
        ([("correlation_id", b"a"), ("correlation_id", b"b")], "duplicated"),
        ([("correlation_id", b"x" * 600)], "too_large"),
        ([("x-other", b"y" * 20_000)], "too_large"),
        ([(f"h{i}", b"") for i in range(65)], "too_many"),
        ([("correlation_id", b"a\nb")], "not_printable"),
    ],
)
def test_x2_headers_we_cannot_trust_refuse_the_record(headers, kind: str) -> None:
    with pytest.raises(BadHeaders) as caught:
        read_trace(record(headers))
    assert caught.value.kind == kind


def test_x2_malformed_traceparent_is_dropped_not_fatal() -> None:
    trace = read_trace(record([("traceparent", b"00-zz-01"), ("correlation_id", b"c")]))
    assert trace.traceparent is None and trace.correlation_id == "c"
    assert not valid_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01")
    assert valid_traceparent(TP)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["correlation_id", "traceparent", "tracestate", "other"]),
            st.binary(max_size=700),
        ),
        max_size=6,
    )
)
def test_x2_any_headers_either_read_or_refused_with_a_reason(headers) -> None:
    """Property: whatever bytes a producer puts in headers, reading them either succeeds
    or raises BadHeaders (the record is dead-lettered); nothing else escapes."""
    try:
        trace = read_trace(record(headers))
    except BadHeaders as exc:
        assert str(exc).startswith("bad headers")
    else:
        assert trace.correlation_id
        assert all(isinstance(v, str) for v in trace.headers().values())


def test_x8_component_states() -> None:
    c = Component("c", "consumer", stall_s=10, grace_s=5, started_at=0, last_report=0)
    c.last_applied = 0
    assert c.problem(now=1) == "joining its consumer group"
    c.assigned(0)
    c.partitions_since = 0
    assert c.problem(now=3) is None
    assert "no partitions" in (c.problem(now=6) or "")
    c.assigned(2)
    c.last_report = 6
    c.failed("boom")
    assert c.problem(now=7) == "erroring: boom"
    c.ok()
    assert c.problem() is None
    c.lag, c.last_applied = 5, c.last_report - 11
    assert "5 records waiting" in (c.problem() or "")


def test_x8_a_loop_that_hangs_without_raising_turns_stalled() -> None:
    """Every pass of a background loop reports, idle ones included; a loop that reports
    nothing for the stall time hangs (a query to a frozen server never returns), and
    readiness names it until its next pass."""
    from shared.health import HEALTH, report_progress

    before = HEALTH.loop_stall_s
    HEALTH.loop_stall_s = 5.0
    try:
        report_progress("test-loop")
        loop = HEALTH.components["test-loop"]
        assert loop.problem() is None
        loop.last_report -= 6
        assert (HEALTH.problems().get("test-loop") or "").startswith("stalled")
        report_progress("test-loop")
        assert "test-loop" not in HEALTH.problems()
    finally:
        HEALTH.loop_stall_s = before
        HEALTH.components.pop("test-loop", None)


MAIN_INPUTS = {
    "consent": "consent-commands",
    "suppression": "suppression-commands",
    "flow_executor": "profile-events",
    "alert_dispatcher": "alert-requests",
}


@pytest.mark.parametrize("service", sorted(MAIN_INPUTS))
def test_each_service_has_one_main_input_and_the_rest_wait_as_side_inputs(service: str) -> None:
    """The input on each service's hot path fetches with `KAFKA_FETCH_MAX_WAIT_MS` (50 ms
    on the dev stack) and every other one with `KAFKA_SIDE_FETCH_MAX_WAIT_MS` (500): an
    input on the path of a latency target declared as a side input waits out the
    embedded broker's longer hold at every hop (the dispatcher's alert-requests once
    added about 80 ms to request → mails queued)."""
    edge = built(service)
    main = [s.topic for s in edge.subscriptions if not s.side]
    assert main == [MAIN_INPUTS[service]]
    assert len(edge.subscriptions) > 1


async def test_x2_a_revoke_waits_for_the_batch_in_flight_up_to_its_limit_and_leaves_no_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """X2: before its partitions go, a member waits for the batch it is applying (then
    commits it); an apply that hangs holds the rebalance up only `REVOKE_WAIT_S`, and
    the wait leaves nothing behind while the batch itself goes on."""
    import asyncio
    from types import SimpleNamespace

    from shared.messaging import edge
    from shared.messaging.inflight import InFlight

    monkeypatch.setattr(edge, "REVOKE_WAIT_S", 0.05)
    release = asyncio.Event()

    async def apply(batch: object) -> None:
        await release.wait()

    inflight = InFlight("revoke", apply, lambda: None)  # type: ignore[arg-type,return-value]
    member = SimpleNamespace(inflight=inflight)
    inflight._applying = applying = asyncio.ensure_future(apply(None))
    before = set(asyncio.all_tasks())
    await edge._Assignment(member).on_partitions_revoked([])  # type: ignore[arg-type]
    assert not applying.done()  # the hung batch is left to go on
    assert {t for t in asyncio.all_tasks() if not t.done()} <= before
    release.set()
    await applying
    await asyncio.wait_for(edge._Assignment(member).on_partitions_revoked([]), 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("service", "expected"),
    [("flow_executor", 2), ("consent", 1), ("alert_dispatcher", 1), ("suppression", 1)],
)
def test_x8_each_main_input_has_its_services_members_and_every_side_input_one(
    service: str, expected: int
) -> None:
    """Unset, `KAFKA_INPUT_CONSUMERS` leaves each service its own choice: the flow
    executor reads `profile-events` with two members (a quarter more intake, measured),
    every other main input with one, and every side input with one."""
    found = {s.topic: len(s.members) for s in built(service).subscriptions}
    assert found.pop(MAIN_INPUTS[service]) == expected
    assert set(found.values()) == {1}


@pytest.mark.parametrize("service", sorted(MAIN_INPUTS))
@pytest.mark.parametrize("n", [1, 3])
def test_x8_kafka_input_consumers_sets_the_members_of_every_main_input(
    service: str, n: int
) -> None:
    found = {s.topic: len(s.members) for s in built(service, n).subscriptions}
    assert found.pop(MAIN_INPUTS[service]) == n
    assert set(found.values()) == {1}


def test_x8_kafka_input_consumers_below_one_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="kafka_input_consumers"):
        Settings(kafka_input_consumers=0)
