"""One submission of ``gradkit grade``: prepare it, run ``otter run`` in a child, classify the outcome.

:func:`prepare` loads a submission (``.ipynb`` or the ``.zip`` students
export), refuses what cannot be a notebook, scans it statically and writes the
copy that is graded: named ``<assignment>.ipynb`` (otter's init cell opens the
notebook by that name; under any other name the tests run at the end of the
notebook instead of at each check cell -- field guide section 8), kernelspec
``python3``, each cell tagged with its index. Only the notebook of a zip is
graded; other members (a planted ``gradkit/`` or ``tests/``) are flagged and
ignored.

:class:`Job` runs ``gradechild.py`` (the real ``otter run``) in the submission's
own sandbox (:mod:`gradkit_tools.sandbox`) with resource limits (set in
``preexec_fn``; everything inside inherits them) and a wall-clock deadline; on
timeout it kills the sandbox and every descendant it has seen.

:class:`DeviceProbe` asks Keras, in a child with the same environment, which
device the kernels train on.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gradkit_tools import sandbox
from gradkit_tools.reproducible import PYTHON3_KERNELSPEC
from gradkit_tools.tamper import scan_submission

__all__ = ["Ungradable", "Prepared", "Job", "DeviceProbe", "prepare", "classify", "probe_device", "CHILD"]

CHILD = Path(__file__).with_name("gradechild.py")
# Run the child as a script without importing the gradkit package (which imports Keras).
_BOOT = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
_SUSPICIOUS_MEMBER = re.compile(r"^(tests|gradkit|gradkit_grader)/|(^|/)grading\.ya?ml$|\.(py|pth)$")
_TIMEOUT_TEXT = re.compile(r"timeout after [0-9.]+ s(?: in [^\n;:,\[]*[^\s;:,\[])?")
_OOM_TEXT = re.compile(r"MemoryError|std::bad_alloc|Cannot allocate memory|out of memory|OOM", re.IGNORECASE)


_device_cache: dict[str, str] = {}


class Ungradable(Exception):
    """The submission cannot be graded; ``str(exc)`` is the reason for the CSV."""


@dataclass
class Prepared:
    """A submission ready for the child: the graded copy plus what the static scan found."""

    notebook: Path
    syntax: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def child_command(*args: str) -> list[str]:
    """argv that runs ``gradechild.py`` with this interpreter."""
    return [sys.executable, "-c", _BOOT, str(CHILD), *args]


def _read_notebook_bytes(path: Path, assignment: str, flags: list[str]) -> bytes:
    if path.suffix.lower() != ".zip":
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            nbs = [n for n in names if n.endswith(".ipynb") and not n.startswith("__MACOSX/")
                   and ".ipynb_checkpoints/" not in n]
            if not nbs:
                raise Ungradable(f"zip holds no notebook ({len(names)} files)")
            if len(nbs) > 1:
                named = [n for n in nbs if Path(n).name == f"{assignment}.ipynb"]
                if len(named) != 1:
                    raise Ungradable(f"zip holds {len(nbs)} notebooks: {', '.join(sorted(nbs))}")
                nbs = named
            flags += [f"zip carries {n} (ignored)" for n in sorted(names)
                      if n not in nbs and _SUSPICIOUS_MEMBER.search(n)]
            return zf.read(nbs[0])
    except zipfile.BadZipFile as exc:
        raise Ungradable(f"not a valid zip: {exc}") from None


def _load(data: bytes) -> dict:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Ungradable(f"not a valid notebook: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Ungradable("not a valid notebook: not JSON "
                         f"({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(nb, dict):
        raise Ungradable(f"not a valid notebook: JSON {type(nb).__name__}, not an object")
    if nb.get("nbformat", 4) < 4 or "cells" not in nb:
        import nbformat

        try:
            nb = json.loads(nbformat.writes(nbformat.reads(text, as_version=4)))
        except Exception as exc:  # noqa: BLE001 - nbformat raises many types
            raise Ungradable(f"not a valid notebook: {type(exc).__name__}: {exc}") from None
    if not isinstance(nb.get("cells"), list) or not all(isinstance(c, dict) for c in nb["cells"]):
        raise Ungradable("not a valid notebook: 'cells' is not a list of cells")
    return nb


def prepare(path: Path, assignment: str, dest_dir: Path) -> Prepared:
    """Write the copy of submission ``path`` that is graded, as ``dest_dir/<assignment>.ipynb``.

    Raises
    ------
    Ungradable
        Not a zip/notebook, not JSON, no cells, a zip with no or several notebooks.
    """
    flags: list[str] = []
    nb = _load(_read_notebook_bytes(path, assignment, flags))
    nb.setdefault("metadata", {})["kernelspec"] = dict(PYTHON3_KERNELSPEC)
    for i, cell in enumerate(nb["cells"]):
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = {}
        cell["metadata"]["gradkit_cell"] = i
    syntax, tamper = scan_submission(nb)
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{assignment}.ipynb"
    out.write_text(json.dumps(nb, indent=1))
    return Prepared(out, [f"syntax error in {s}" for s in syntax], flags + [str(f) for f in tamper])


#: Run by the student's kernel as it starts, before any cell: the hidden-test guard remembers the
#: library functions it restores around every student call (gradkit_grader.guard.restore_libraries).
KERNEL_STARTUP = "import gradkit_grader.guard  # noqa: F401 - snapshot of pristine library functions\n"


def _kernel_startup(ipython_dir: Path) -> Path:
    """An IPython directory whose default profile runs :data:`KERNEL_STARTUP` when a kernel starts."""
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-gradkit-guard.py").write_text(KERNEL_STARTUP)
    return ipython_dir


class Job:
    """``otter run`` of one prepared submission in a child process with limits.

    With ``sandbox`` (:mod:`gradkit_tools.sandbox`) the child runs in its own bubblewrap sandbox whose
    one writable folder is ``workdir``; without it, in a new session with the same resource limits.
    """

    def __init__(self, autograder: Path, prepared: Prepared, workdir: Path, log: Path,
                 timeout_s: float | None, limits: sandbox.Limits, manifest: Path | None = None, *,
                 sandboxed: bool = True, slot: int = 0):
        self.workdir, self.log_path = workdir, log
        self.report = workdir / "child.json"
        self.outdir = workdir / "out"
        self.outdir.mkdir(parents=True, exist_ok=True)
        (workdir / "tmp").mkdir(exist_ok=True)
        env = dict(os.environ, TMPDIR=str(workdir / "tmp"),  # otter's temp tree dies with the workdir
                   IPYTHONDIR=str(_kernel_startup(workdir / "ipython")))
        argv = child_command("run", str(Path(autograder).resolve()), str(prepared.notebook.resolve()),
                             str(self.outdir.resolve()), str(self.report.resolve()),
                             *([str(Path(manifest).resolve())] if manifest else []))
        if sandboxed:
            env.update(HOME=str(workdir / "home"), MPLCONFIGDIR=str(workdir / "home" / ".matplotlib"))
            sandbox.prepare_workdir(workdir, slot)
            argv = sandbox.command(argv, workdir, env=env, slot=slot,
                                   read_only=[Path(autograder), *([Path(manifest)] if manifest else [])])
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "wb")
        self.started = time.monotonic()
        self.deadline = self.started + timeout_s if timeout_s else None
        self.timed_out = False
        self.proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=sandbox.preexec(limits))
        self._seen: dict[int, psutil.Process] = {}
        self.peak_rss_mb: float | None = None

    def poll(self) -> bool:
        """Track descendants, enforce the deadline; True once the child has exited."""
        rss = 0
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                self._seen.setdefault(p.pid, p)
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        # resident memory of the submission's whole process tree (kernel included), sampled at each poll
        self.peak_rss_mb = max(self.peak_rss_mb or 0.0, round(rss / 2**20, 1)) or None
        if self.proc.poll() is not None:
            self._reap()
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            self.kill()
            return True
        return False

    def kill(self) -> None:
        """SIGKILL the child's process group and every descendant seen so far."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self._reap()

    def _reap(self) -> None:
        for p in self._seen.values():
            try:
                if p.is_running():  # psutil compares creation times: safe against pid reuse
                    p.kill()
            except psutil.Error:
                pass
        self._log.close()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class DeviceProbe:
    """Ask Keras, in a child process with this environment, which device it trains on.

    Started before grading and read after it, so the probe (which imports
    the Keras backend) overlaps the grading children. Cached per process.
    """

    def __init__(self, timeout_s: float = 300):
        self.timeout_s = timeout_s
        self.failed = "unknown"
        self.proc = None if "device" in _device_cache else subprocess.Popen(
            child_command("probe"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def cancel(self) -> None:
        """Stop the probe (grading was interrupted); :meth:`result` then reports it as unknown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def result(self) -> str:
        """``"<backend>: <device>"``, waiting for the probe if needed."""
        if self.proc is not None:
            proc, self.proc = self.proc, None
            try:
                stdout, _ = proc.communicate(timeout=self.timeout_s)
                info = json.loads(stdout.strip().splitlines()[-1])
                _device_cache["device"] = f"{info['backend']}: {info['device']}"
            except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError, KeyError) as exc:
                proc.kill()
                self.failed = f"unknown (device probe failed: {type(exc).__name__})"
        return _device_cache.get("device", self.failed)


def probe_device(timeout_s: float = 300) -> str:
    """``"<backend>: <device>"`` (e.g. ``"tensorflow: CPU"``) as Keras reports it in a child process."""
    return DeviceProbe(timeout_s).result()


def classify(job: Job, prepared: Prepared, questions: dict[str, float], *,
             timeout_s: float | None, memory_mb: int | None) -> tuple[str, str, dict[str, float], dict | None]:
    """(status, reason, scores per question, otter's results.json or None) of a finished job."""
    zero = {q: 0.0 for q in questions}
    if job.timed_out:
        return "ungradable", f"timeout after {timeout_s:g} s", zero, None
    log = job.log_path.read_text(errors="replace") if job.log_path.exists() else ""
    oom_in_log = bool(_OOM_TEXT.search(log))
    limit = f" under the {memory_mb} MB limit" if memory_mb else ""
    if not job.report.exists():
        rc = job.proc.returncode
        if rc is not None and rc > 128 and rc - 128 in signal.valid_signals():
            rc = 128 - rc  # bubblewrap exits 128 + N when the command died of signal N
        if rc is not None and rc < 0:
            sig = signal.Signals(-rc).name
            if sig == "SIGXCPU":
                return "ungradable", "CPU time limit exceeded (grading process killed by SIGXCPU)", zero, None
            if sig == "SIGXFSZ":
                return "ungradable", "file size limit exceeded (grading process killed by SIGXFSZ)", zero, None
            why = ("out of memory" + limit if oom_in_log
                   else "grading process killed by the submission's code or the system")
            return "ungradable", f"{why} ({sig})", zero, None
        last = (log.strip().splitlines() or ["no output"])[-1][:200]
        return "ungradable", ("out of memory" + limit if oom_in_log
                              else f"grading process failed (exit {rc}): {last}"), zero, None
    rep = json.loads(job.report.read_text())
    exc = rep.get("exception")
    if exc:
        kind = exc["type"]
        msg = (exc["message"].strip().splitlines() or [""])[0][:300]
        if kind == "DeadKernelError":
            return "ungradable", ("out of memory (kernel died)" + limit if oom_in_log else "kernel died"), zero, None
        if kind == "MemoryError":
            return "ungradable", "out of memory" + limit, zero, None
        if kind in ("NotJSONError", "NBFormatError", "ValidationError", "JSONDecodeError"):
            return "ungradable", f"not a valid notebook: {msg}", zero, None
        if kind == "OtterRuntimeError":
            return "ungradable", f"otter: {msg}", zero, None
        return "ungradable", f"{kind}: {msg}", zero, None
    if rep.get("altered"):
        files = ", ".join(rep["altered"][:5]) + (f" (+{len(rep['altered']) - 5} more)"
                                                 if len(rep["altered"]) > 5 else "")
        return "ungradable", f"hidden tests or support files altered during grading: {files}", zero, None
    errors = rep.get("cell_errors", [])
    names = {e["ename"] for e in errors}
    mem = [e for e in errors if e["ename"] == "MemoryError"]
    if mem:
        where = f" in cell {mem[0]['cell'] + 1}" if mem[0]["cell"] is not None else ""
        return "ungradable", f"out of memory (MemoryError{where}{limit})", zero, None
    results_path = job.outdir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else None
    if rep.get("catastrophic") or results is None:
        exits = [n for n in ("SystemExit", "KeyboardInterrupt") if n in names]
        why = (f"{exits[0]} raised by student code" if exits
               else f"otter could not collect results: {rep.get('catastrophic')}")
        return "ungradable", why, zero, results
    scores = {t["name"]: float(t.get("score") or 0) for t in results.get("tests", []) if "max_score" in t}
    maxes = {t["name"]: float(t["max_score"]) for t in results.get("tests", []) if "max_score" in t}
    if maxes != {q: float(p) for q, p in questions.items()}:
        return "ungradable", (f"results disagree with the release manifest (questions/points {maxes} "
                              f"!= {questions}): tests were altered during grading"), zero, results
    notes = list(prepared.syntax)
    for t in results.get("tests", []):  # per-test time limits (gradkit_grader.guard) are reasons, not just failures
        hit = _TIMEOUT_TEXT.search(str(t.get("output") or "")) if "max_score" in t else None
        if hit and float(t.get("score") or 0) < float(t["max_score"]):
            notes.append(f"{t['name']}: {hit.group(0)}")
    for e in errors:
        if e["cell"] is not None and e["ename"] != "SyntaxError":
            note = (f"cell {e['cell'] + 1} raised {e['ename']}: "
                    f"{e['evalue'].splitlines()[0][:120] if e['evalue'] else ''}")
            if note not in notes:
                notes.append(note)
    return "graded", "; ".join(notes[:4]) + (f"; +{len(notes) - 4} more" if len(notes) > 4 else ""), scores, results
