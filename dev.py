#!/usr/bin/env python3
"""The README's two commands, set-up free on a machine with only Python 3.10+.

    python3 dev.py run     # regenerate releases, grade the bundled example submissions
    python3 dev.py test    # the test suite (what CI runs)

Each creates ``.venv/`` next to this file on first use and installs gradkit
into it (``pip install -e .[test,jax,report]``); later calls reuse it and reinstall
only when ``pyproject.toml`` changed. Grading runs every submission in a
bubblewrap sandbox: where ``bwrap`` is missing and this runs as root with
apt-get, it is installed (Debian's ``bubblewrap``); otherwise ``run`` grades
without a sandbox (the bundled examples are the course's own) and says so.
Standard library only.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".gradkit-install-stamp"


def _run(cmd: list[str], **kw) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)


def ensure_env() -> None:
    """Create the virtual environment and install gradkit if needed."""
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text().strip() == want:
        return
    if not PY.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    steps = [
        [PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [PY, "-m", "pip", "install", "--quiet", "-e", ".[test,jax,report]"],
    ]
    for cmd in steps:
        if _run(cmd) != 0:
            sys.exit(f"set-up step failed: {' '.join(map(str, cmd))}")
    STAMP.write_text(want)


def ensure_bwrap() -> bool:
    """True when bubblewrap is installed, installing Debian's package first where possible."""
    if shutil.which("bwrap"):
        return True
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing bubblewrap (the grading sandbox)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if _run(["apt-get", "update", "-qq"], env=env) == 0:
            _run(["apt-get", "install", "-y", "-qq", "bubblewrap"], env=env)
    return shutil.which("bwrap") is not None


def _pytest(args: list[str], env: dict[str, str] | None = None) -> int:
    code = _run([PY, "-m", "pytest", *args], env=env)
    if code == 5:
        print("pytest collected no tests: that is a failure here", flush=True)
        return 1
    return code


def cmd_test(extra: list[str]) -> int:
    """Fast suite on TensorFlow, then the backend-portable tests on JAX."""
    ensure_env()
    ensure_bwrap()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    code = _pytest(["-m", "not slow", *extra], env=env)
    if code:
        return code
    jax_env = dict(env, KERAS_BACKEND="jax")
    return _pytest(["-m", "backends and not slow", *extra], env=jax_env)


def cmd_run(extra: list[str]) -> int:
    """The main job: releases and the grade table of the bundled examples."""
    ensure_env()
    if not ensure_bwrap() and "--sandbox" not in extra:
        print("bubblewrap is not installed: grading the bundled examples without a sandbox", flush=True)
        extra = [*extra, "--sandbox", "none"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return _run([PY, "-m", "gradkit_tools.cli", "main", *extra], env=env)


def main(argv: list[str]) -> int:
    commands = {"test": cmd_test, "run": cmd_run}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
