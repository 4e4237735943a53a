"""compose.yaml is valid for Compose v2 and wires the services the way SPEC "Running"
asks: KRaft Kafka, PostgreSQL, Mailpit, topic and migration jobs, health-gated start."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.settings import Settings
from tests.deploy.conftest import ROOT, compose_binary

COMPOSE = ROOT / "compose.yaml"
SERVICES = {
    "consent": "consent",
    "suppression": "suppression",
    "flow-executor": "flow_executor",
    "alert-dispatcher": "alert_dispatcher",
}


# compose.yaml holds no secrets (X6): whoever runs it makes them, as these tests do.
SECRETS = {
    "LINK_SECRET": secrets.token_hex(32),
    "PRIVACY_HASH_SECRET": secrets.token_hex(32),
    "API_KEYS": f"acme:{secrets.token_hex(16)}",
}


def _config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(compose_binary()), "-f", str(path), "config", "--format", "yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path.parent,
        env={**os.environ, **(SECRETS if env is None else env)},
    )


@pytest.fixture(scope="module")
def resolved() -> dict:
    result = _config(COMPOSE)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        [str(compose_binary()), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **SECRETS},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_x6_compose_refuses_to_run_without_secrets_of_your_own(missing: str) -> None:
    """Each secret on its own is required: Compose names the one left out (the order
    in which it reports several missing ones is its own, so one is left out at a time)."""
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update({k: v for k, v in SECRETS.items() if k != missing})
    result = _config(COMPOSE, env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_compose_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE.read_text().replace("condition: service_healthy", "condition: service_sleepy", 1)
    )
    assert _config(broken).returncode != 0


def test_kafka_runs_in_kraft_mode(resolved: dict) -> None:
    kafka = resolved["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert "healthcheck" in kafka
    assert {"postgres", "mailpit"} <= set(resolved["services"])


def test_services_start_after_healthy_infrastructure_and_jobs(resolved: dict) -> None:
    services = resolved["services"]
    assert services["topics"]["command"][:2] == ["consentflow", "topics"]
    assert services["migrate"]["command"] == ["consentflow", "migrate"]
    for name, module in SERVICES.items():
        svc = services[name]
        assert svc["command"] == ["python", "-m", f"services.{module}"]
        deps = {k: v["condition"] for k, v in svc["depends_on"].items()}
        assert deps == {
            "kafka": "service_healthy",
            "postgres": "service_healthy",
            "mailpit": "service_healthy",
            "topics": "service_completed_successfully",
            "migrate": "service_completed_successfully",
        }
        probe = " ".join(svc["healthcheck"]["test"])
        assert "/readyz" in probe or "/healthz" in probe
        assert svc["read_only"] is True


def test_services_get_every_spec_variable(resolved: dict) -> None:
    spec = {
        "KAFKA_BOOTSTRAP_SERVERS",
        "DATABASE_URL",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_STARTTLS",
        "HTTP_HOST",
        "HTTP_PORT",
        "PUBLIC_BASE_URL",
        "LINK_SECRET",
        "API_KEYS",
        "KAFKA_ENABLE_IDEMPOTENCE",
        "LOG_LEVEL",
    }
    known = {name.upper() for name in Settings.model_fields}
    for name in SERVICES:
        env = resolved["services"][name]["environment"]
        assert spec <= set(env), spec - set(env)
        assert set(env) <= known, set(env) - known
        assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "!shared/" in (ROOT / ".dockerignore").read_text()


def test_every_setting_is_documented() -> None:
    """docs/operations.md lists every environment variable shared/settings.py reads."""
    text = (ROOT / "docs" / "operations.md").read_text()
    missing = [n.upper() for n in Settings.model_fields if f"`{n.upper()}`" not in text]
    assert not missing, f"add to the configuration reference in docs/operations.md: {missing}"


def test_w4_the_console_runs_on_its_own_over_the_services_apis(resolved: dict) -> None:
    console = resolved["services"]["console"]
    assert console["command"] == ["python", "-m", "console"]
    env = console["environment"]
    for name in SERVICES:
        var = f"CONSENTFLOW_{SERVICES[name].upper()}_API_URL"
        assert env[var] == f"http://{name}:8080"
    # Only the APIs: no database, no broker, none of the services' secrets.
    assert not {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "API_KEYS", "LINK_SECRET"} & set(env)
    deps = {k: v["condition"] for k, v in console["depends_on"].items()}
    assert deps == dict.fromkeys(SERVICES, "service_healthy")
    assert "/healthz" in " ".join(console["healthcheck"]["test"])
    assert console["read_only"] is True
    assert console["ports"][0]["published"] == "8090"
    # The one image carries it: its package, templates and catalogues.
    assert "!console/" in (ROOT / ".dockerignore").read_text()
    assert "COPY console ./console" in (ROOT / "Dockerfile").read_text()
