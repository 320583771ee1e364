"""The wheel works outside the checkout: built from this tree, installed in a fresh venv, run from /tmp.

The fresh venv sees the test environment's third-party packages through a path file (no network, no
re-download), but not this checkout: `router` must come from the installed wheel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from router import __version__
from tests.conftest import unused_port, wait_listening

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the fresh venv's bin directory)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "dist"), str(ROOT)], check=True, capture_output=True, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("ai_router-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "test-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True)
    return wheel, venv / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AI_ROUTER_CONFIG")}
    env["AI_ROUTER_APP_KEY"] = "k"
    return env


def test_wheel_carries_what_it_needs_and_nothing_else(installed: tuple[Path, Path]) -> None:
    names = zipfile.ZipFile(installed[0]).namelist()
    assert "router/data/demo.yaml" in names
    assert {"router/data/o200k_base.tiktoken.gz", "router/data/cl100k_base.tiktoken.gz"} <= set(names)
    tops = {n.split("/")[0] for n in names if not n.startswith("ai_router-")}
    assert tops == {"router", "middleware", "backends"}, tops
    assert any(n.startswith("router/routing/_textscan.") and n.endswith((".so", ".pyd")) for n in names), names


def test_version_and_check_from_anywhere(installed: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir = installed[1]
    r = subprocess.run([bin_dir / "ai-router", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.strip() == f"ai-router {__version__}"
    where = subprocess.run([bin_dir / "python", "-c", "import router; print(router.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=_env()).stdout
    assert where.startswith(str(bin_dir.parent)), where  # the wheel's copy, not the checkout
    probe = "from router.routing import textscan; print(textscan.COMPILED)"
    compiled = subprocess.run([bin_dir / "python", "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                              env=_env()).stdout
    assert compiled.strip() == "True", compiled  # the classifier's C scan came with the wheel
    for config in ("config/router.yaml", "config/demo.yaml", "deploy/router.yaml"):
        r = subprocess.run([bin_dir / "ai-router", "check", str(ROOT / config)], capture_output=True, text=True,
                           cwd=tmp_path, env=_env())
        assert r.returncode == 0, (config, r.stdout, r.stderr)


def test_demo_runs_from_tmp(installed: tuple[Path, Path], tmp_path: Path) -> None:
    port = unused_port()
    proc = subprocess.Popen([installed[1] / "ai-router", "demo", "--port", str(port)], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(proc, port)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                       json={"model": "auto", "messages": [{"role": "user", "content": "hi there!"}]})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
        assert r.headers["x-router-tier"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=15)
    assert f"http://127.0.0.1:{port}" in out
