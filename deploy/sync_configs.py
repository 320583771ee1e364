"""Rewrites the deployment configs from `config/router.yaml`, so backends and routing never drift apart.

    python deploy/sync_configs.py          # rewrite deploy/router.yaml and deploy/k8s/configmap.yaml
    python deploy/sync_configs.py --check  # exit 1 when either is out of date (the tests run this)

Each deployment differs from the default config only in what its place needs: the container listens on
all interfaces and requires keys; the sidecar listens on the pod's loopback only and is open.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "config" / "router.yaml"

CONTAINER_HEAD = """\
# ai-router config for the container image and deploy/docker-compose.yml (the image copies it to
# /etc/ai-router/router.yaml). Generated from config/router.yaml by deploy/sync_configs.py: edit that file,
# then run the script. It differs in what a container needs: it listens on all interfaces, keeps state in
# Redis (or SQLite under /data) and requires keys. Secrets come from the environment (deploy/.env).
"""
CONTAINER = {
    "server": "server: {host: 0.0.0.0, port: 8082, workers: 1, max_body_mb: 32, shutdown_grace_s: 30}",
    "state": 'state: {url: "${AI_ROUTER_STATE_URL:-sqlite:////data/state.db}"}   # compose: redis://redis:6379/0',
    "keys": "  keys:\n    - {name: app, key_env: AI_ROUTER_APP_KEY, tenant: default/app}",
}
SIDECAR_HEAD = """\
# The sidecar's config as a ConfigMap (deploy/k8s/sidecar.yaml mounts it at /etc/ai-router/router.yaml).
# Generated from config/router.yaml by deploy/sync_configs.py: edit that file, then run the script.
# The router listens on the pod's loopback only, so the app reaches it and nothing else does.
apiVersion: v1
kind: ConfigMap
metadata:
  name: ai-router-config
data:
  router.yaml: |
"""
SIDECAR = {
    "server": "server: {host: 127.0.0.1, port: 8082, workers: 1, max_body_mb: 32, shutdown_grace_s: 30}",
    "state": 'state: {url: "sqlite:////data/state.db"}',
    "keys": "  keys: []                             # loopback-only sidecar: open",
}


def _body() -> str:
    lines = DEFAULT.read_text().splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return "".join(lines)


def _apply(body: str, repl: dict[str, str]) -> str:
    for pattern, key in ((r"^server:.*$", "server"), (r"^state:.*$", "state"), (r"^  keys:.*$", "keys")):
        body, n = re.subn(pattern, lambda _m, k=key: repl[k], body, count=1, flags=re.M)
        if n != 1:
            raise SystemExit(f"config/router.yaml: no line matches {pattern!r}")
    return body


def render() -> dict[Path, str]:
    body = _body()
    sidecar = "".join("    " + line if line.strip() else line for line in _apply(body, SIDECAR).splitlines(True))
    return {
        ROOT / "deploy" / "router.yaml": CONTAINER_HEAD + _apply(body, CONTAINER),
        ROOT / "deploy" / "k8s" / "configmap.yaml": SIDECAR_HEAD + sidecar,
    }


def main(argv: list[str]) -> int:
    stale = [p for p, text in render().items() if not p.is_file() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is out of date: run python deploy/sync_configs.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in render().items():
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
