"""The Kubernetes manifests validate against the Kubernetes schemas, as rendered by kustomize."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
KUSTOMIZATIONS = ["base", "overlays/postgres-ha", "monitoring"]
STANDALONE = ["secret.example.yaml", "overlays/postgres-ha/db-upgrade-job.yaml"]
# Custom resources of the Prometheus Operator: no schema ships with kubernetes-validate.
OPERATOR_KINDS = {"PrometheusRule", "ServiceMonitor"}


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl (for `kubectl kustomize`) is missing; make test installs it")
    return found


def _render(path: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [_kubectl(), "kustomize", str(K8S / path)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in YAML(typ="safe").load_all(out) if d]


def _validate(tmp_path: Path, docs: list[dict[str, Any]]) -> None:
    builtin = [d for d in docs if d["kind"] not in OPERATOR_KINDS]
    if not builtin:
        return
    target = tmp_path / "rendered.yaml"
    with target.open("w") as fh:
        YAML().dump_all(builtin, fh)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubernetes_validate",
            "-k",
            "1.37.0",
            "--strict",
            "--no-warn",
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_each_kustomization_renders_and_validates_against_the_kubernetes_schemas(
    path: str, tmp_path: Path
) -> None:
    docs = _render(path)
    assert docs
    _validate(tmp_path, docs)


@pytest.mark.parametrize("path", STANDALONE)
def test_standalone_manifests_validate(path: str, tmp_path: Path) -> None:
    _validate(tmp_path, [d for d in YAML(typ="safe").load_all(K8S / path) if d])


def _image_uid() -> int:
    match = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert match, "the Dockerfile's USER must be numeric (runAsNonRoot checks it)"
    return int(match[1])


def _deployment(path: str) -> dict[str, Any]:
    return next(d for d in _render(path) if d["kind"] == "Deployment")


@pytest.mark.parametrize("path", ["base", "overlays/postgres-ha"])
def test_the_pod_runs_as_the_images_numeric_non_root_user_with_a_locked_down_container(
    path: str,
) -> None:
    pod = _deployment(path)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _image_uid() != 0
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # README: requested at 192 MiB, limited at 512 MiB: above a 1M first sync's peak with a
    # daemon's funnel state beside it (about 310 MiB: docs/benchmarks.md §5, kpi_refresh).
    assert container["resources"]["requests"]["memory"] == "192Mi"
    assert container["resources"]["limits"]["memory"] == "512Mi"


def test_the_single_replica_base_recreates_and_the_ha_overlay_rolls_with_a_standby() -> None:
    base, ha = _deployment("base")["spec"], _deployment("overlays/postgres-ha")["spec"]
    assert base["replicas"] == 1 and base["strategy"]["type"] == "Recreate"
    assert ha["replicas"] == 2 and ha["strategy"]["type"] == "RollingUpdate"
    assert ha["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdbs = {
        p: next(d for d in _render(p) if d["kind"] == "PodDisruptionBudget")["spec"]
        for p in ("base", "overlays/postgres-ha")
    }
    assert pdbs["base"].get("maxUnavailable") == 1
    assert pdbs["overlays/postgres-ha"].get("minAvailable") == 1
    ha_kinds = {d["kind"] for d in _render("overlays/postgres-ha")}
    assert "PersistentVolumeClaim" not in ha_kinds  # the state lives in PostgreSQL


def test_the_config_in_each_configmap_loads_as_syncd_settings(tmp_path: Path) -> None:
    from syncd.settings import load_settings

    env = {
        "SF_CLIENT_SECRET": "y",
        "HUBSPOT_TOKEN": "z",
        "SYNCD_DATABASE_URL": "postgresql+psycopg://syncd:pw@db/syncd",
    }
    for path in ("base", "overlays/postgres-ha"):
        cm = next(d for d in _render(path) if d["kind"] == "ConfigMap")
        (tmp_path / "config.yaml").write_text(cm["data"]["config.yaml"])
        (tmp_path / "rules").mkdir(exist_ok=True)
        (tmp_path / "rules" / "default.yaml").write_text(cm["data"]["default.yaml"])
        settings = load_settings(tmp_path / "config.yaml", env=env)
        assert settings.server.host == "0.0.0.0"  # probes reach the pod's IP


def test_the_operator_alert_rules_equal_the_plain_rule_file() -> None:
    plain = YAML(typ="safe").load(K8S / "monitoring" / "alerts.rules.yaml")
    operator = YAML(typ="safe").load(K8S / "monitoring" / "prometheusrule.yaml")
    assert operator["spec"]["groups"] == plain["groups"]
