"""The deploy files, checked without a container engine (none runs here): the Dockerfile by hadolint and
by the rules the image promises, the compose file and the Kubernetes manifests by their required fields
and their wiring to the router's config, the systemd unit by its hardening, the k6 scripts by node."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config import load

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IN_CI = os.environ.get("CI") == "true"


def _tool(name: str) -> str:
    """The path of a command line tool next to this Python (a venv's bin) or on PATH; in CI it must exist."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed (.ci/run must install it)")
        pytest.skip(f"{name} is not installed")
    return found


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_deploy_configs_are_in_sync_with_the_default() -> None:
    r = subprocess.run([sys.executable, str(DEPLOY / "sync_configs.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_container_config_is_valid_and_needs_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_ROUTER_APP_KEY", "k")
    config = load(DEPLOY / "router.yaml")
    assert config.server.host == "0.0.0.0"
    assert config.auth.get("keys"), "a container listening on all interfaces must require keys"


def test_dockerfile_passes_hadolint() -> None:
    r = subprocess.run([_tool("hadolint"), str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_rules() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage"
    assert all("slim" in line for line in re.findall(r"^FROM .*$", text, re.M)), "slim bases"
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users, "sets a USER"
    assert users[-1].split(":")[0] not in ("0", "root"), "runs as non-root"
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M), "HEALTHCHECK on /healthz"
    assert "AI_ROUTER_DATA=/data" in text, "state outside the root filesystem"
    assert 'VOLUME ["/data"]' in text
    # the tokenizer files are package data, so the installed image needs no network to count tokens
    assert "*.tiktoken.gz" in (ROOT / "pyproject.toml").read_text()
    # the build-time `ai-router check` gives every key_env the container config needs a value
    check = next(line for line in text.splitlines() if "ai-router check" in line)
    for key in yaml.safe_load((DEPLOY / "router.yaml").read_text())["auth"]["keys"]:
        assert f"{key['key_env']}=" in check, key
    ignore = (ROOT / ".dockerignore").read_text()
    assert ignore.startswith("#")
    assert "\n**\n" in ignore
    assert "!router/" in ignore
    # the classifier's C scan: compiled in the build stage (its compiler stays there), imported by the image
    assert "!setup.py" in ignore
    assert "COPY pyproject.toml setup.py" in text
    build, final = text.split("\nFROM python:${PYTHON_VERSION}-slim\n")
    assert "gcc" in build
    assert "gcc" not in final
    assert 'python -c "import router.routing._textscan"' in final


def test_compose_is_wired(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"router", "redis", "ollama", "ollama-pull", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
    router = services["router"]
    assert router["env_file"] == ".env"
    assert (DEPLOY / ".env.example").is_file()
    assert ".env" in (ROOT / ".gitignore").read_text()
    assert router["environment"]["AI_ROUTER_CONFIG"] == "/etc/ai-router/router.yaml"
    assert router["environment"]["AI_ROUTER_STATE_URL"].startswith("redis://redis:")
    assert router["read_only"] is True
    gpu = services["ollama"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert "ollama pull" in " ".join(services["ollama-pull"]["entrypoint"])
    pulled = set(re.findall(r"ollama pull (\S+)", " ".join(services["ollama-pull"]["entrypoint"])))
    monkeypatch.setenv("AI_ROUTER_APP_KEY", "k")
    ollama = next(b for b in load(DEPLOY / "router.yaml").backends if b.name == "ollama")
    assert pulled == {m.id for m in ollama.models}, "the pull step fetches exactly the models the config names"
    assert compose["secrets"]["ai_router_admin_key"]["environment"] == "AI_ROUTER_ADMIN_KEY"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "compose.yml").read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["router:8082"]
    assert scrape["authorization"]["credentials_file"] == "/run/secrets/ai_router_admin_key"
    for svc in services.values():  # every file mounted from the repository exists
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), f"{src} is mounted but missing"
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert not re.search(r"sk-[A-Za-z0-9]{8,}", text), "no secrets in the compose file"


def test_k8s_sidecar() -> None:
    docs = {d["kind"]: d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in _docs(f)}
    assert {"Deployment", "ConfigMap", "Secret"} <= set(docs)
    for kind, d in docs.items():
        assert d.get("apiVersion"), kind
        assert d["metadata"].get("name"), kind
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= (
        docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )
    router = next(c for c in pod["initContainers"] if c["name"] == "ai-router")
    app = pod["containers"][0]
    assert router["restartPolicy"] == "Always"  # a native sidecar
    assert router["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert router["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert router["resources"]["limits"]
    assert router["resources"]["requests"]
    assert router["securityContext"]["readOnlyRootFilesystem"] is True
    assert router["securityContext"]["runAsNonRoot"] is True
    assert {"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:8082/v1"} in app["env"]
    # drain: preStop + the router's shutdown grace fit in the pod's termination grace period
    raw = yaml.safe_load(docs["ConfigMap"]["data"]["router.yaml"])
    pre_stop = float(router["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + raw["server"]["shutdown_grace_s"]
    assert raw["server"]["host"] == "127.0.0.1"  # loopback-only in the pod
    mounted = {v["name"]: v for v in pod["volumes"]}
    assert mounted["router-config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert router["envFrom"][0]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"]


def test_k8s_configmap_holds_a_valid_config(tmp_path: Path) -> None:
    (cm,) = _docs(DEPLOY / "k8s" / "configmap.yaml")
    path = tmp_path / "router.yaml"
    path.write_text(cm["data"]["router.yaml"])
    assert load(path).server.host == "127.0.0.1"


def test_systemd_unit_is_hardened() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "ai-router.service")
    svc = unit["Service"]
    assert svc["ExecReload"].endswith("-HUP $MAINPID")
    assert "ai-router serve" in svc["ExecStart"]
    for key, value in (("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"),
                       ("PrivateTmp", "yes"), ("ProtectHome", "yes"), ("CapabilityBoundingSet", "")):
        assert svc[key] == value, key
    assert float(svc["TimeoutStopSec"]) > 30  # longer than the default server.shutdown_grace_s


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "tests" / "k6").glob("*.js")))
def test_k6_scripts_parse(script: str) -> None:
    r = subprocess.run([_tool("node"), "--check", str(ROOT / "tests" / "k6" / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (ROOT / "tests" / "k6" / script).read_text()
    assert "thresholds" in text
    assert "grafana/k6" in text
