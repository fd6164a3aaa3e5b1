"""The Kubernetes example's timings agree with the service's shutdown settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gracestop import ShutdownConfig
from gracestop._cli import stop_timeout

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "examples" / "kubernetes" / "deployment.yaml"


def documents() -> dict[str, dict[str, Any]]:
    with MANIFEST.open() as file:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(file)}


def container() -> dict[str, Any]:
    spec = documents()["Deployment"]["spec"]["template"]["spec"]
    [app] = spec["containers"]
    return dict(app)


def config() -> ShutdownConfig:
    env = {item["name"]: item["value"] for item in container()["env"]}
    return ShutdownConfig.from_env(environ=env)


def test_the_manifest_configures_the_example_defaults() -> None:
    from examples.fastapi_app import DEFAULTS

    assert config() == ShutdownConfig(**DEFAULTS)


def test_the_grace_period_outlasts_the_whole_shutdown() -> None:
    spec = documents()["Deployment"]["spec"]["template"]["spec"]
    cfg = config()
    assert spec["terminationGracePeriodSeconds"] >= stop_timeout(cfg)
    assert spec["terminationGracePeriodSeconds"] > cfg.wait_time + cfg.watchdog_grace
    # No preStop sleep: the drain delay keeps the pod serving instead.
    assert "lifecycle" not in container()


def test_readiness_fails_well_within_the_drain_delay() -> None:
    probe = container()["readinessProbe"]
    assert probe["httpGet"]["path"] == "/readyz"
    noticed_after = probe["periodSeconds"] * probe["failureThreshold"] + probe["timeoutSeconds"]
    assert noticed_after < config().drain_delay


def test_liveness_cannot_restart_a_draining_pod() -> None:
    probe = container()["livenessProbe"]
    assert probe["httpGet"]["path"] == "/livez"
    # /livez stays 200 until the process stops; even so, the first failure
    # needed to restart comes after the whole shutdown could have run.
    assert probe["periodSeconds"] * probe["failureThreshold"] >= config().wait_time


def test_the_service_routes_to_the_probed_port() -> None:
    docs = documents()
    ports = {p["name"] for p in container()["ports"]}
    assert (
        docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    )
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] in ports
    assert container()["readinessProbe"]["httpGet"]["port"] in ports
