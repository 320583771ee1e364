"""The official SDKs' own generated API tests, run through the router against a spec-driven mock.

`make test-sdk` (or `python -m tests.sdk.run_generated`) does, from nothing, in `.cache/sdk/`:

1. takes the sdists of `openai` 3.3.1 and `anthropic` 0.101.0 from PyPI (the versions ../shared/specs/ match:
   their `tests/api_resources/` are generated from those specs) and a private venv with their test needs;
2. starts Prism (npm `@stoplight/prism-cli`, the mock those suites are written against) on each spec, pruned
   to the endpoints below so it starts in seconds;
3. starts the router (`ai-router serve`) in front of both mocks: an `openai` backend and an `anthropic`
   backend whose models carry every id the suites use, `responses` capability on (pass-through);
4. runs the suites with `TEST_API_BASE_URL` pointing at the router and prints the counts.

Selected: `chat.completions.create`, `completions.create`, `embeddings.create`, `responses.create`,
`models.list`/`retrieve` (OpenAI) and `messages.create`/`count_tokens`, `models.list`/`retrieve` (Anthropic),
every variant (plain, raw, streaming-response, all-params; sync and async; loose and strict validation).
Left out, because the router does not offer them: the stored-object APIs (`GET/POST/DELETE
/chat/completions/{id}`, `/responses/{id}` retrieve/delete/cancel/compact, `DELETE /models/{id}`) and
message batches.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "sdk"
SPECS = Path(os.environ.get("AI_ROUTER_SHARED", ROOT.parent / "shared")) / "specs"
if not SPECS.is_dir():  # a worktree beside the main checkout
    SPECS = Path("/work/shared/specs")
SDKS = {"openai": "3.3.1", "anthropic": "0.101.0"}
TEST_NEEDS = ["pytest==9.2.0", "pytest-asyncio==1.5.0", "inline-snapshot==0.36.1", "http-snapshot==0.1.9",
              "respx==0.23.1", "dirty-equals==0.11", "rich==15.0.0"]
PRISM = "@stoplight/prism-cli@5.16.0"
SUITES = {
    "openai": (["tests/api_resources/chat/test_completions.py", "tests/api_resources/test_completions.py",
                "tests/api_resources/test_embeddings.py", "tests/api_resources/test_responses.py",
                "tests/api_resources/test_models.py"],
               "(create or parse_method) and not compact or (TestModels or TestAsyncModels) and not delete"),
    "anthropic": (["tests/api_resources/test_messages.py", "tests/api_resources/test_models.py"], ""),
}
OPENAI_PATHS = ["/chat/completions", "/completions", "/embeddings", "/responses", "/models", "/models/{model}"]
ANTHROPIC_PATHS = ["/v1/messages", "/v1/messages/count_tokens", "/v1/models", "/v1/models/{model_id}"]


def say(msg: str) -> None:
    print(f"[sdk] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], **kw: Any) -> None:
    subprocess.run(cmd, check=True, **kw)


def prepare() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    venv = CACHE / "venv"
    if not (venv / "bin" / "pytest").exists():
        say("creating the SDK test venv")
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "-q", *(f"{n}[aiohttp]=={v}" for n, v in SDKS.items()),
             *TEST_NEEDS])
    for name, version in SDKS.items():
        src = CACHE / f"{name}-{version}"
        if not src.is_dir():
            say(f"fetching the {name} {version} sdist (its generated tests)")
            run([str(venv / "bin" / "pip"), "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", str(CACHE),
                 f"{name}=={version}"])
            with tarfile.open(CACHE / f"{name}-{version}.tar.gz") as tar:
                tar.extractall(CACHE, filter="data")
    if not (CACHE / "node_modules" / ".bin" / "prism").exists():
        say(f"installing {PRISM} (npm)")
        run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(CACHE), PRISM])
    return venv


def prune(src: Path, out: Path, paths: list[str]) -> None:
    """The spec with only `paths` and the components they reach (Prism then starts in seconds)."""
    d = yaml.safe_load(src.read_text()) if src.suffix in (".yml", ".yaml") else orjson.loads(src.read_bytes())
    d.pop("webhooks", None)
    d["paths"] = {p: v for p, v in d["paths"].items() if p in paths}
    seen: set[tuple[str, str]] = set()

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            ref = x.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/"):
                _, _, kind, name = ref.split("/", 3)
                if (kind, name) not in seen:
                    seen.add((kind, name))
                    walk(d["components"][kind][name])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(d["paths"])
    comps: dict[str, dict[str, Any]] = {}
    for kind, name in seen:
        comps.setdefault(kind, {})[name] = d["components"][kind][name]
    if "securitySchemes" in d.get("components", {}):
        comps["securitySchemes"] = d["components"]["securitySchemes"]
    d["components"] = comps
    out.write_bytes(orjson.dumps(d))


def model_ids(src: Path, files: list[str]) -> set[str]:
    ids: set[str] = set()
    for f in files:
        text = (src / f).read_text()
        ids |= set(re.findall(r'model="([^"]+)"', text))
        ids |= set(re.findall(r'retrieve\(\s*(?:model_id=)?"([^"]+)"', text))
    return ids


def deprecated_models(venv: Path) -> set[str]:
    """The model ids the anthropic SDK warns about (its suite calls each once)."""
    code = "from anthropic.resources.messages import DEPRECATED_MODELS as D; print('\\n'.join(D))"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def router_config(openai_url: str, anthropic_url: str, openai_ids: set[str], anthropic_ids: set[str]) -> dict:
    def models(ids: set[str], responses: bool) -> list[dict[str, Any]]:
        caps = ["tools", "vision", "json"] + (["responses"] if responses else [])
        out = []
        for i in sorted(ids):
            embed = "embedding" in i
            m: dict[str, Any] = {"id": i, "context": 1_000_000}
            if embed:
                m["type"] = "embedding"
            else:
                m.update(tier="cloud", capabilities=caps)
            out.append(m)
        return out

    return {
        "server": {"host": "127.0.0.1"},
        "state": {"url": "memory://"},
        "logging": {"access_log": False, "level": "warning"},
        "backends": [
            {"name": "openai-mock", "kind": "openai", "base_url": openai_url, "api_key_env": "SDK_MOCK_KEY",
             "models": models(openai_ids, True)},
            {"name": "anthropic-mock", "kind": "anthropic", "base_url": anthropic_url, "api_key_env": "SDK_MOCK_KEY",
             "models": models(anthropic_ids, False)},
        ],
        "routing": {"tiers": ["cloud"], "rules": [{"tier": "cloud"}]},
    }


def wait_for(proc: subprocess.Popen[bytes], port: int, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start within {timeout:g}s")


def main() -> int:
    venv = prepare()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, str] = {}
    failed = False
    try:
        prune(SPECS / "openai.openapi.yml", CACHE / "openai.json", OPENAI_PATHS)
        prune(SPECS / "anthropic.openapi.json", CACHE / "anthropic.json", ANTHROPIC_PATHS)
        ports = {"openai": free_port(), "anthropic": free_port(), "router": free_port()}
        say("starting Prism on both specs")
        for name in ("openai", "anthropic"):
            log = (CACHE / f"prism-{name}.log").open("wb")
            procs.append(subprocess.Popen([str(CACHE / "node_modules" / ".bin" / "prism"), "mock", "-h", "127.0.0.1",
                                           "-p", str(ports[name]), str(CACHE / f"{name}.json")],
                                          stdout=log, stderr=subprocess.STDOUT))
        for proc, name in zip(procs, ("openai", "anthropic"), strict=True):
            wait_for(proc, ports[name], f"prism ({name})")
        srcs = {n: CACHE / f"{n}-{v}" for n, v in SDKS.items()}
        cfg = router_config(f"http://127.0.0.1:{ports['openai']}", f"http://127.0.0.1:{ports['anthropic']}/v1",
                            model_ids(srcs["openai"], SUITES["openai"][0]) | {"gpt-4o-mini"},
                            model_ids(srcs["anthropic"], SUITES["anthropic"][0]) | deprecated_models(venv))
        (CACHE / "router.yaml").write_text(yaml.safe_dump(cfg))
        say(f"starting the router on :{ports['router']}")
        procs.append(subprocess.Popen([sys.executable, "-m", "router", "serve", "--config", str(CACHE / "router.yaml"),
                                       "--port", str(ports["router"])], cwd=ROOT,
                                      env={**os.environ, "SDK_MOCK_KEY": "sk-mock"},
                                      stdout=(CACHE / "router.log").open("wb"), stderr=subprocess.STDOUT))
        wait_for(procs[-1], ports["router"], "the router")
        base = f"http://127.0.0.1:{ports['router']}"
        for name, (files, expr) in SUITES.items():
            say(f"running the {name} SDK's generated tests through the router")
            env = {**os.environ, "TEST_API_BASE_URL": base + ("/v1" if name == "openai" else ""),
                   "PYTHONDONTWRITEBYTECODE": "1"}
            cmd = [str(venv / "bin" / "pytest"), "-q", "-o", "addopts=", "-p", "no:cacheprovider", "-W",
                   "ignore::DeprecationWarning", *files]
            if expr:
                cmd += ["-k", expr]
            r = subprocess.run(cmd, cwd=srcs[name], env=env, capture_output=True, text=True)
            (CACHE / f"{name}-results.txt").write_text(r.stdout + r.stderr)
            results[name] = (r.stdout.strip().splitlines() or ["(no output)"])[-1]
            failed |= r.returncode != 0
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    for name, line in results.items():
        say(f"{name} {SDKS[name]}: {line}   (details: .cache/sdk/{name}-results.txt)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
