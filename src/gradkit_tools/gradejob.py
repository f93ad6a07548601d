"""One submission of ``gradkit grade``: prepare it, run the grading harness in a child, classify the outcome.

:func:`prepare` loads a submission (``.ipynb`` or the ``.zip`` students
export), refuses what cannot be a notebook, scans it statically and writes the
copy that is graded: named ``<assignment>.ipynb`` (otter's init cell opens the
notebook by that name), kernelspec
``python3``, each cell tagged with its index. Only the notebook of a zip is
graded; other members (a planted ``gradkit/`` or ``tests/``) are flagged and
ignored.

:func:`classify` reads what the harness (:mod:`gradkit_tools.worker`) left:
its report, its results.json, its exit.

:class:`DeviceProbe` asks Keras, in a child with the same environment, which
device the kernels train on.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gradkit_tools.reproducible import PYTHON3_KERNELSPEC
from gradkit_tools.tamper import scan_submission

if TYPE_CHECKING:
    from gradkit_tools.worker import Job

__all__ = ["Ungradable", "Prepared", "DeviceProbe", "prepare", "classify", "probe_device", "CHILD"]

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
    """(status, reason, scores per question, the harness's results.json or None) of a finished job."""
    zero = {q: 0.0 for q in questions}
    if job.timed_out:
        return "ungradable", f"timeout after {timeout_s:g} s", zero, None
    log = job.log_path.read_text(errors="replace") if job.log_path.exists() else ""
    oom_in_log = bool(_OOM_TEXT.search(log))
    limit = f" under the {memory_mb} MB limit" if memory_mb else ""
    if not job.report.exists():
        rc = job.returncode
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
        if kind == "KernelGone":
            return "ungradable", ("out of memory (kernel died)" + limit if oom_in_log else msg), zero, None
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
    for t in results.get("tests", []):  # per-test time limits (gradkit.guard) are reasons, not just failures
        hit = _TIMEOUT_TEXT.search(str(t.get("output") or "")) if "max_score" in t else None
        if hit and float(t.get("score") or 0) < float(t["max_score"]):
            notes.append(f"{t['name']}: {hit.group(0)}")
    notes += [str(n)[:200] for n in rep.get("notes") or []]
    if rep.get("kernel"):
        notes.append(str(rep["kernel"])[:200])
    for e in errors:
        if e["cell"] is not None and e["ename"] != "SyntaxError":
            note = (f"cell {e['cell'] + 1} raised {e['ename']}: "
                    f"{e['evalue'].splitlines()[0][:120] if e['evalue'] else ''}")
            if note not in notes:
                notes.append(note)
    return "graded", "; ".join(notes[:4]) + (f"; +{len(notes) - 4} more" if len(notes) > 4 else ""), scores, results
