"""How every Kafka client of the project connects (X7): the services' FastStream brokers
and outbox producers, and `consentflow topics`.

One place turns the `KAFKA_*` settings into aiokafka options, so that a secured cluster
(TLS, SASL PLAIN or SCRAM) and compression work the same in every client:

- `KAFKA_SECURITY_PROTOCOL` PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL;
- `KAFKA_SASL_MECHANISM` PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 with
  `KAFKA_SASL_USERNAME` / `KAFKA_SASL_PASSWORD`;
- `KAFKA_SSL_CAFILE` (the brokers' CA; the system's CAs when unset) and, for mutual TLS,
  `KAFKA_SSL_CERTFILE` / `KAFKA_SSL_KEYFILE`;
- `KAFKA_COMPRESSION_TYPE` for producers. Consumers read every codec whatever this says:
  the codec libraries (`cramjam`, aiokafka's snappy/lz4/zstd extras) are dependencies.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.settings import Settings

MAX_BATCH_BYTES = 1024 * 1024
"""The producer's record batch limit per partition; the outbox relay fills batches to it."""


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context: verifies the broker against `KAFKA_SSL_CAFILE` (or the
    system's CAs) including its host name, and presents a client certificate if set."""
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile and settings.kafka_ssl_keyfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return context


def connection_options(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and security options shared by producers, consumers and admin."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return options


def make_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    """The producer behind the outbox relay: acks from all replicas, no linger (a linger
    would delay every flush), idempotence and compression as configured."""
    codec = settings.kafka_compression_type
    return AIOKafkaProducer(
        **connection_options(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        compression_type=None if codec == "none" else codec,
        linger_ms=0,
        max_batch_size=MAX_BATCH_BYTES,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )


def consumer_request_timeout_ms(settings: Settings) -> int:
    """A consumer's request timeout: at least 40 s, above the group's session timeout,
    as the client requires."""
    return max(settings.kafka_request_timeout_ms, 40_000)


def group_consumer_options(settings: Settings, *, side: bool = False) -> dict[str, Any]:
    """How every consumer group of the services reads (their FastStream subscribers): new
    groups start at the beginning of the topic, with the session, heartbeat and fetch
    wait of the settings (a `side` input's own, `fetch_wait_ms`) and up to 4 MiB per
    partition and fetch. Committing is the subscriber's acknowledgement policy, after
    the batch's transaction commits."""
    return {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "fetch_max_wait_ms": fetch_wait_ms(settings, side=side),
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
    }


def fetch_wait_ms(settings: Settings, *, side: bool = False) -> int:
    """How long a consumer's fetch waits for data: `KAFKA_FETCH_MAX_WAIT_MS` for a
    service's main input, `KAFKA_SIDE_FETCH_MAX_WAIT_MS` for its other (`side`) inputs.
    Apache Kafka answers a fetch as soon as data arrives, so there the wait costs no
    latency; the embedded broker holds every fetch for the whole wait, so there a short
    wait is paid in fetches by every idle consumer (17 of them in the four services)."""
    return settings.kafka_side_fetch_max_wait_ms if side else settings.kafka_fetch_max_wait_ms


def make_admin(settings: Settings) -> AIOKafkaAdminClient:
    """An admin client (topic creation)."""
    return AIOKafkaAdminClient(**connection_options(settings))


def broker_security(settings: Settings) -> BaseSecurity | None:
    """The `KAFKA_*` security settings as FastStream's security object, so that the
    FastStream broker (its consumers, producer and admin client) connects as every other
    client of the project does."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    password = settings.kafka_sasl_password
    sasl = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }[settings.kafka_sasl_mechanism]
    return sasl(
        username=settings.kafka_sasl_username or "",
        password=password.get_secret_value() if password else "",
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )
