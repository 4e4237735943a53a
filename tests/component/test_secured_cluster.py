"""X7: a service and `consentflow topics` reach a TLS listener (with a client certificate:
mutual TLS) and a shared cluster's topic and group prefixes, using only the documented
settings.

The embedded broker cannot serve TLS itself (its `--cert` and `--key` options refuse
each other, and a combined PEM given to `--cert` alone yields no TLS handshake) nor
SASL usefully (`--authentication` offers only SCRAM, and its memory storage has no way
to create a SCRAM user). So a TLS-terminating proxy (Debian's `stunnel4`, installed by
`.ci/run`) sits in front of a broker of its own that advertises the proxy's port: every
connection a client makes, bootstrap and partition leaders alike, goes through TLS. The
CA and certificates are made here and thrown away.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.conftest import eventually
from tools.devstack.broker import TansuBroker
from tools.devstack.processes import stop_process
from tools.devstack.stack import ServiceProcess, free_port

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
pytestmark = pytest.mark.skipif(STUNNEL is None, reason="stunnel4 not installed (.ci/run does)")


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    files = {n: folder / f"{n}.pem" for n in ("ca", "server", "server-key", "client", "client-key")}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("consentflow test CA", ca_key, None, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = _cert("127.0.0.1", server_key, ca, ca_key, server=True)
    files["server"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    client = _cert("consentflow-service", client_key, ca, ca_key)
    files["client"].write_bytes(client.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, files["server-key"])
    _write_key(client_key, files["client-key"])
    for path in files.values():
        path.chmod(0o644)
    return files


class TlsBroker:
    """A broker of its own behind stunnel: TLS with required client certificates."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pki = make_pki(folder)
        self.tls_port = free_port()
        self.broker = TansuBroker(free_port(), folder / "broker.log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.tls_port}"

    def start(self) -> None:
        # The broker listens in the clear on its own port but advertises the TLS port.
        url = f"tcp://127.0.0.1:{self.broker.port}"
        advertised = f"tcp://127.0.0.1:{self.tls_port}"
        from tools.devstack.broker import broker_binary

        log = (self.folder / "broker.log").open("ab")
        self.broker.proc = subprocess.Popen(
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        conf = self.folder / "stunnel.conf"
        conf.write_text(
            "foreground = yes\n"
            f"output = {self.folder / 'stunnel.log'}\n"
            "[kafka]\n"
            f"accept = 127.0.0.1:{self.tls_port}\n"
            f"connect = 127.0.0.1:{self.broker.port}\n"
            f"cert = {self.pki['server']}\n"
            f"key = {self.pki['server-key']}\n"
            f"CAfile = {self.pki['ca']}\n"
            "verifyChain = yes\n"
            "requireCert = yes\n"
        )
        assert STUNNEL is not None
        self.proc = subprocess.Popen(
            [STUNNEL, str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def client_ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki["ca"]))
        context.load_cert_chain(str(self.pki["client"]), str(self.pki["client-key"]))
        return context

    def settings_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": str(self.pki["ca"]),
            "KAFKA_SSL_CERTFILE": str(self.pki["client"]),
            "KAFKA_SSL_KEYFILE": str(self.pki["client-key"]),
        }

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, 5)
        self.broker.stop()


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    broker = TlsBroker(tmp_path_factory.mktemp("tls"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def _wait_for_tls(broker: TlsBroker) -> None:
    async def answers() -> bool:
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap,
            security_protocol="SSL",
            ssl_context=broker.client_ssl(),
            request_timeout_ms=3000,
        )
        try:
            await asyncio.wait_for(producer.start(), 5)
            return True
        except Exception:
            return False
        finally:
            await producer.stop()

    await eventually(answers, timeout_s=20, interval_s=0.3)


async def test_x7_topics_command_and_a_service_work_through_mutual_tls_with_prefixes(
    stack, tls_broker: TlsBroker
) -> None:
    await _wait_for_tls(tls_broker)
    prefix = f"team{uuid.uuid4().hex[:4]}."
    env = {
        **tls_broker.settings_env(),
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_GROUP_PREFIX": prefix,
    }
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tools.cli", "topics", "--partitions", "2"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    assert f"{prefix}suppression-commands" in created.stdout

    # Without a client certificate the proxy refuses the handshake: TLS is really on.
    bare = AIOKafkaProducer(
        bootstrap_servers=tls_broker.bootstrap,
        security_protocol="SSL",
        ssl_context=ssl.create_default_context(cafile=str(tls_broker.pki["ca"])),
        request_timeout_ms=3000,
    )
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do
        await asyncio.wait_for(bare.start(), 10)
    await bare.stop()

    svc = ServiceProcess(
        "suppression",
        {**stack.env(), **env, "API_KEYS": "acme:acme-key-0123456789"},
        tls_broker.folder / "suppression.log",
        free_port(),
    )
    svc.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=tls_broker.bootstrap,
        security_protocol="SSL",
        ssl_context=tls_broker.client_ssl(),
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=tls_broker.bootstrap,
        security_protocol="SSL",
        ssl_context=tls_broker.client_ssl(),
        enable_auto_commit=False,
    )
    try:
        await asyncio.to_thread(svc.wait_ready, 90)
        await producer.start()
        await consumer.start()
        profile = f"p-{uuid.uuid4().hex[:8]}"
        command = {
            "command_id": f"c-{profile}",
            "account_id": f"tls-{uuid.uuid4().hex[:6]}",
            "profile": {"id": profile, "email": f"{profile}@example.com"},
            "action": "suppress",
            "reason": "manual",
            "occurred_at": "2026-11-23T10:00:00Z",
        }
        await producer.send_and_wait(
            f"{prefix}suppression-commands", json.dumps(command).encode(), key=profile.encode()
        )
        changes = f"{prefix}suppression-changes"
        parts = [TopicPartition(changes, p) for p in range(2)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)

        async def change_for_profile():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if r.key == profile.encode():
                        return json.loads(r.value)
            return None

        change = await eventually(change_for_profile, timeout_s=60)
        assert change["profile_id"] == profile
        groups = await asyncio.to_thread(_groups, tls_broker)
        assert f"{prefix}consentflow.suppression.suppression-commands" in groups
    finally:
        svc.stop()
        await producer.stop()
        await consumer.stop()


def _groups(broker: TlsBroker) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> set[str]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=broker.bootstrap,
            security_protocol="SSL",
            ssl_context=broker.client_ssl(),
        )
        await admin.start()
        try:
            return {g[0] for g in await admin.list_consumer_groups()}
        finally:
            await admin.close()

    return asyncio.run(run())
