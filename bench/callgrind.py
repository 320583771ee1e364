"""The outer half of the in-process `*_instructions` scripts: run a script's `--inner` part under callgrind with
instrumentation off and read back the dump its counted work made.

The inner part (run by path, so it may drive another checkout's code, whose `bench` may not have this module)
warms up, switches instrumentation on with `callgrind_control -i on PID`, does the work, dumps (`-d`) and
switches it off; the outer part calls `dump_of(...)` and divides `total_of(dump)` by its request count.
Needs `valgrind` (Debian package).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# runs a script by path (another checkout may not have it), its own folder kept off sys.path
_BY_PATH = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


def available() -> bool:
    """valgrind and callgrind_control are installed (else a message on stderr)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind not found: apt-get install -y valgrind", file=sys.stderr)
        return False
    return True


def dump_of(script: str, args: list[str], root: Path, pythonpath: str | None = None) -> str | None:
    """Run `script --inner ARGS` under callgrind from `root` (PYTHONPATH `pythonpath`, default `root`); the text
    of the dump `counting` made, or None (the run's stderr tail printed when it failed)."""
    with tempfile.TemporaryDirectory(prefix="instructions-") as work:
        out = Path(work) / "callgrind.out"
        env = dict(os.environ, PYTHONPATH=pythonpath or str(root))
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
               sys.executable, "-c", _BY_PATH, script, "--inner", *args]
        with open(Path(work) / "stderr", "wb") as err:
            proc = subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=err)
        if proc.returncode != 0:
            print((Path(work) / "stderr").read_text(errors="replace")[-3000:], file=sys.stderr)
            return None
        for f in sorted(Path(work).glob("callgrind.out*")):
            dump = f.read_text(errors="replace")
            if "Trigger: dump" in dump[:4000]:
                return dump
    print("no callgrind dump", file=sys.stderr)
    return None


def total_of(dump: str) -> int:
    """The instructions a dump counted."""
    m = re.search(r"^summary: (\d+)", dump, re.M)
    if m is None:
        raise ValueError("a callgrind dump without its summary line")
    return int(m.group(1))
