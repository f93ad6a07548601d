"""The processes that grade: harness workers outside the sandboxes, one kernel sandbox per submission.

A :class:`Worker` is a child process running the autograder's own harness
(``gradkit_grader.harness --serve``, imported from the unpacked zip) that grades one
submission after another; ``gradkit grade`` keeps one per parallel slot, so Keras is imported once
per slot rather than once per submission. No submission code ever runs in a worker: a
:class:`Job` hands it a spec naming the submission's folder, and the harness starts the student's
kernel there, inside that submission's own bubblewrap sandbox (:mod:`gradkit_tools.sandbox`,
whose one writable folder it is), with the resource limits of :class:`gradkit_tools.sandbox.Limits`.

On the wall-clock deadline a job kills its worker (and with it the sandbox, which bubblewrap
ties to its parent) and every process of the submission it has seen; the slot starts a fresh
worker for the next submission. A worker that dies takes only its current submission with it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import psutil

from gradkit_tools import sandbox
from gradkit_tools.gradejob import Prepared

__all__ = ["Worker", "Job", "unpack_autograder", "KERNEL_ENV"]

#: environment variables the student's kernel inherits (names, and prefixes ending in ``_``); the rest
#: (credentials, the grader's paths) stays out
KERNEL_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
              "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
              "XLA_", "JAX_", "NVIDIA_", "TF_CPP_")
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); from gradkit_grader.harness import main; "
         "sys.exit(main(sys.argv[2:]))")


def unpack_autograder(zip_path: Path, dest: Path) -> Path:
    """Unpack the autograder zip into ``dest``: the workers' copy, which no sandbox mounts."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def _die_with_parent() -> None:
    """Linux: SIGKILL this (child) process when the process that started it dies, so a killed
    ``gradkit grade`` leaves no worker grading on (bubblewrap then ends the worker's sandbox)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _kernel_env(kernel_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in KERNEL_ENV or any(p.endswith("_") and k.startswith(p) for p in KERNEL_ENV)}
    home = kernel_dir / "home"
    env.update(HOME=str(home), TMPDIR=str(kernel_dir / "tmp"), MPLCONFIGDIR=str(home / ".matplotlib"),
               IPYTHONDIR=str(home / ".ipython"), PYTHONNOUSERSITE="1")
    return env


class Worker:
    """A harness process that grades the specs it is sent, one at a time.

    Parameters
    ----------
    autograder : path
        The unpacked autograder (:func:`unpack_autograder`); its ``files/`` goes first on ``sys.path``.
    memory_mb : int, optional
        Address-space limit of the worker itself (the kernels get theirs from each spec).
    """

    def __init__(self, autograder: Path, memory_mb: int | None = None):
        files = Path(autograder).resolve() / "files"
        limits = sandbox.preexec(sandbox.Limits(memory_mb=memory_mb))

        def preexec() -> None:
            limits()
            _die_with_parent()

        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(files), "--serve"],
                                     cwd=autograder, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True, text=True,
                                     preexec_fn=preexec)

    def send(self, spec: Path) -> None:
        self.proc.stdin.write(f"{spec}\n")
        self.proc.stdin.flush()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker's process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def close(self) -> None:
        """Let the worker finish (stdin closed) or kill it."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


class Job:
    """One prepared submission, graded by ``worker`` with ``limits`` and a wall-clock deadline.

    The kernel runs in ``prepared.notebook.parent`` (the submission's folder, where :func:`prepare`
    wrote the notebook and the student package is copied); with ``sandboxed`` that folder is the one
    writable folder of its bubblewrap sandbox, owned by the slot's uid.
    """

    def __init__(self, worker: Worker, autograder: Path, prepared: Prepared, workdir: Path, log: Path,
                 timeout_s: float | None, limits: sandbox.Limits, *, sandboxed: bool = True, slot: int = 0):
        self.worker, self.workdir, self.log_path = worker, workdir, log
        self.report = workdir / "child.json"
        self.outdir = workdir / "out"
        self.outdir.mkdir(parents=True, exist_ok=True)
        kernel_dir = prepared.notebook.parent.resolve()
        for entry in sorted((Path(autograder) / "files").iterdir()):  # the student package, not the runtime
            if entry.is_dir() and entry.name != "gradkit_grader":
                shutil.copytree(entry, kernel_dir / entry.name, dirs_exist_ok=True)
        env = _kernel_env(kernel_dir)
        prefix: list[str] = []
        if sandboxed:
            sandbox.prepare_workdir(kernel_dir, slot)
            prefix = sandbox.command([], kernel_dir, env=env, slot=slot)
        else:
            for sub in ("home", "tmp"):
                (kernel_dir / sub).mkdir(exist_ok=True)
        rlimits = limits.rlimits()
        if not sandbox.as_root():  # the process limit counts the calling user's processes too
            rlimits = [(r, v + sandbox.user_processes()) if r == sandbox.resource.RLIMIT_NPROC else (r, v)
                       for r, v in rlimits]
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")
        spec = {"autograder": str(Path(autograder).resolve()), "notebook": str(prepared.notebook.resolve()),
                "outdir": str(self.outdir.resolve()), "report": str(self.report.resolve()), "prefix": prefix,
                "env": env, "rlimits": rlimits, "log": str(log.resolve())}
        (workdir / "spec.json").write_text(json.dumps(spec))
        self.started = time.monotonic()
        self.deadline = self.started + timeout_s if timeout_s else None
        self.timed_out = False
        self.returncode: int | None = None
        self._seen: dict[int, psutil.Process] = {}
        self.peak_rss_mb: float | None = None
        worker.send(workdir / "spec.json")

    def poll(self) -> bool:
        """Track the submission's processes, enforce the deadline; True once it is graded or dead."""
        rss = 0
        try:
            for p in psutil.Process(self.worker.proc.pid).children(recursive=True):
                self._seen.setdefault(p.pid, p)
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        # resident memory of the submission's kernel (its sandbox's whole process tree), sampled at each poll
        self.peak_rss_mb = max(self.peak_rss_mb or 0.0, round(rss / 2**20, 1)) or None
        if self.report.exists():
            self._reap()
            return True
        if not self.worker.alive:
            self.returncode = self.worker.proc.returncode
            self._reap()
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            self.kill()
            return True
        return False

    def kill(self) -> None:
        """Kill the worker and every process of the submission seen so far."""
        self.worker.kill()
        self.returncode = self.worker.proc.returncode
        self._reap()

    def _reap(self) -> None:
        for p in self._seen.values():
            try:
                if p.is_running():  # psutil compares creation times: safe against pid reuse
                    p.kill()
            except psutil.Error:
                pass

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def phases(self) -> dict:
        """Seconds the harness reported per phase (kernel start, cells, tests), or ``{}``."""
        try:
            got = json.loads(self.report.read_text()).get("seconds")
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in got.items() if isinstance(v, (int, float))} if isinstance(got, dict) else {}

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)
