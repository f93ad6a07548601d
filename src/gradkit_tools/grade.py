"""``gradkit grade`` and ``gradkit merge``: batch grading with the autograder's own harness.

Every submission's notebook runs in a kernel of its own, in a sandbox of its own
(:mod:`gradkit_tools.sandbox`) with a wall-clock timeout and limits on memory,
processes, file size and CPU time; its hidden tests run in a harness worker
outside the sandbox (:mod:`gradkit_tools.worker`: the zip's
``gradkit_grader.harness``, the same code Gradescope's ``run_autograder`` runs),
up to ``jobs`` submissions at a time. The batch always completes: a submission that hangs, exhausts
memory, kills its kernel, exits, or is not a notebook gets a row with zeros,
``grading_status`` ``ungradable`` and a ``reason``; a graded zero is
``graded``. Before grading, the autograder zip is checked against the
``manifest.json`` that ``gradkit release`` wrote next to it, so the hidden
tests used are the release's.

Output in ``out``: ``final_grades.csv`` (otter grade's columns -- ``file``,
one column per question, ``total_points_earned``, ``percent_correct``,
``grading_status`` -- plus ``reason``, ``flags`` and ``device``, with otter's
``points-per-question`` row first), ``results/<stem>.json`` (Gradescope's
results.json plus a ``gradkit`` record), ``logs/<stem>.log`` and
``summary.json``. Each results file is written as soon as its submission is
graded, so re-running a batch that was stopped resumes it: submissions whose
record matches the submission's and the autograder's sha256 are skipped, unless
``force``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Iterable, Sequence

from gradkit_tools import reproducible, sandbox
from gradkit_tools.course import ConfigError, find_course, load_limits
from gradkit_tools.gradecsv import CSV_NAME, GradeError, merge, write_csv
from gradkit_tools.gradejob import Ungradable, classify, prepare, probe_device
from gradkit_tools.release import MANIFEST_FILE, ZIP_FILE
from gradkit_tools.worker import Job, Worker, unpack_autograder

__all__ = ["GradeError", "grade", "merge", "resolve_autograder", "load_manifest", "parse_shard",
           "collect_submissions", "probe_device", "CSV_NAME"]

_SUBMISSION_SUFFIXES = (".ipynb", ".zip")


def resolve_autograder(autograder: str | os.PathLike, course: str | os.PathLike | None = None) -> Path:
    """Path of the autograder zip for a zip path, an ``autograder/<name>`` folder or an assignment name."""
    p = Path(autograder)
    if p.suffix == ".zip":
        if p.is_file():
            return p
        raise GradeError(f"autograder zip not found: {p}")
    candidates = [p / ZIP_FILE, Path("autograder") / str(autograder) / ZIP_FILE]
    try:
        candidates.append(find_course(course).parent / "autograder" / str(autograder) / ZIP_FILE)
    except ConfigError:
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise GradeError(f"no autograder for {autograder!r}: looked for {', '.join(map(str, candidates))}; "
                     "run `gradkit release` first or pass the zip")


def load_manifest(zip_path: Path) -> dict:
    """The release manifest next to ``zip_path``, after checking that the zip matches it.

    Raises
    ------
    GradeError
        No ``manifest.json`` next to the zip, or the zip (or any entry, e.g. a
        hidden test) differs from what ``gradkit release`` recorded.
    """
    mpath = zip_path.parent / MANIFEST_FILE
    if not mpath.is_file():
        raise GradeError(f"{mpath} not found: grade only with autograders made by `gradkit release`")
    manifest = json.loads(mpath.read_text())
    entries = reproducible.read_zip(zip_path)
    recorded = manifest.get("files", {})
    changed = [n for n in sorted(entries) if reproducible.sha256_bytes(entries[n]) != recorded.get(n)]
    changed += [f"{n} (missing)" for n in sorted(recorded) if n not in entries]
    if changed or reproducible.sha256_file(zip_path) != manifest.get("zip_sha256"):
        raise GradeError(f"{zip_path} does not match {mpath} "
                         f"(entries differing: {', '.join(changed) or 'none; zip bytes differ'}); "
                         "regenerate both with `gradkit release`")
    return manifest


def collect_submissions(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Submission files (``.ipynb``/``.zip``) named directly or found directly inside folders, sorted by name."""
    found: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found += [f for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in _SUBMISSION_SUFFIXES
                      and not f.name.startswith(".")]
        elif p.is_file():
            found.append(p)
        else:
            raise GradeError(f"submission not found: {p}")
    by_name: dict[str, Path] = {}
    for f in found:
        if f.name in by_name and by_name[f.name].resolve() != f.resolve():
            raise GradeError(f"two submissions named {f.name}: {by_name[f.name]} and {f}")
        by_name[f.name] = f
    return [by_name[n] for n in sorted(by_name)]


def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"K/N"`` (or ``(K, N)``) to ``(K, N)`` with ``1 <= K <= N``."""
    if shard is None:
        return None
    try:
        k, n = (int(x) for x in (shard.split("/") if isinstance(shard, str) else shard))
    except (ValueError, TypeError):
        raise GradeError(f"shard must look like K/N (e.g. 2/4), got {shard!r}") from None
    if not 1 <= k <= n:
        raise GradeError(f"shard {k}/{n}: need 1 <= K <= N")
    return k, n


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _keys(files: list[Path]) -> dict[Path, str]:
    stems = [f.stem for f in files]
    return {f: (f.stem if stems.count(f.stem) == 1 else f.name) for f in files}


def _stored_record(path: Path) -> dict | None:
    """The ``gradkit`` record of an earlier run's results file, or None if absent/unreadable."""
    try:
        rec = json.loads(path.read_text()).get("gradkit")
    except (OSError, ValueError, AttributeError):
        return None
    return rec if isinstance(rec, dict) else None


def _record(path: Path, key: str, status: str, reason: str, flags: list[str], scores: dict[str, float],
            manifest: dict, ag_sha: str, device: str, seconds: float, peak_rss_mb: float | None = None,
            phases: dict | None = None) -> dict:
    total = sum(scores.values())
    possible = float(manifest["points_possible"])
    return {"file": path.name, "key": key, "sha256": reproducible.sha256_file(path),
            "assignment": manifest["assignment"],
            "autograder_sha256": ag_sha, "grading_status": status, "reason": reason, "flags": flags,
            "scores": scores, "total_points_earned": total,
            "percent_correct": round(total / possible, 6) if possible else 0.0,
            "device": device, "seconds": round(seconds, 2), "phases": phases or {}, "peak_rss_mb": peak_rss_mb,
            "source": str(path.resolve())}


def grade(autograder: str | os.PathLike, submissions: Iterable[str | os.PathLike] | str | os.PathLike,
          out: str | os.PathLike, *, jobs: int | None = None, timeout_s: float | None = None,
          memory_mb: int | None = None, force: bool = False, shard: str | Sequence[int] | None = None,
          course: str | os.PathLike | None = None, progress: bool = True, sandbox_mode: str = "bwrap") -> list[dict]:
    """Grade submissions with the autograder's harness and write ``out/final_grades.csv``.

    Parameters
    ----------
    autograder : path or str
        ``autograder.zip`` from ``gradkit release``, its folder, or an assignment name.
    submissions : path or iterable of paths
        Submission files (``.ipynb`` or exported ``.zip``) and/or folders holding them.
    out : path
        Output folder (created).
    jobs : int, optional
        Submissions graded in parallel; default the number of usable cores.
    timeout_s, memory_mb : optional
        Wall clock per submission and address-space limit of its grading
        process (0 disables the limit); default ``grade.submission_timeout_s``
        and ``grade.memory_limit_mb`` of the course's ``grading.yml``.
    force : bool
        Regrade submissions that already have an up-to-date result.
    shard : "K/N", optional
        Grade only the K-th of N contiguous slices of the submissions sorted by file name.
    course : path, optional
        Course folder with ``grading.yml`` (default :func:`gradkit_tools.course.find_course`).
    progress : bool
        Show a tqdm progress bar.
    sandbox_mode : {"bwrap", "none"}
        ``bwrap`` (default): every submission in its own bubblewrap sandbox; where it cannot start
        (not installed, no user namespaces), grading stops with the reason before any submission
        runs. ``none``: no sandbox, every row flagged.

    Returns
    -------
    list of dict
        The per-submission records behind the CSV rows, sorted by file name.
    """
    zip_path = resolve_autograder(autograder, course)
    manifest = load_manifest(zip_path)
    ag_sha = manifest["zip_sha256"]
    questions: dict[str, float] = {q: float(p) for q, p in manifest["questions"].items()}
    if isinstance(submissions, (str, os.PathLike)):
        submissions = [submissions]
    files = collect_submissions(submissions)
    keys = _keys(files)
    k_n = parse_shard(shard)
    if k_n:
        k, n = k_n
        files = files[(k - 1) * len(files) // n: k * len(files) // n]
    limits = load_limits(course).get("grade", {})
    timeout_s = limits.get("submission_timeout_s") if timeout_s is None else timeout_s
    memory_mb = limits.get("memory_limit_mb") if memory_mb is None else memory_mb
    jobs = max(1, jobs or _cores())
    if jobs > sandbox.MAX_SLOTS:
        raise GradeError(f"--jobs {jobs}: one grading runs at most {sandbox.MAX_SLOTS} submissions at once; "
                         "split the batch with --shard K/N to run more")
    box = sandbox.Limits(memory_mb=memory_mb or None, processes=limits.get("process_limit"),
                         file_size_mb=limits.get("file_size_limit_mb"),
                         cpu_s=int(timeout_s * _cores()) + 1 if timeout_s else None)
    try:
        mode = sandbox.resolve_mode(sandbox_mode)
    except sandbox.SandboxError as exc:
        raise GradeError(str(exc)) from None
    out = Path(out)
    (out / "results").mkdir(parents=True, exist_ok=True)

    records: dict[Path, dict] = {}
    todo = deque()
    for f in files:
        old = None if force else _stored_record(out / "results" / f"{keys[f]}.json")
        if old and old.get("sha256") == reproducible.sha256_file(f) and old.get("autograder_sha256") == ag_sha:
            records[f] = old
        else:
            todo.append(f)
    if todo and mode == "bwrap":
        with tempfile.TemporaryDirectory(prefix="gradkit-sandbox-check-") as tmp:
            try:
                sandbox.check(Path(tmp))
            except sandbox.SandboxError as exc:
                raise GradeError(str(exc)) from None
    # probed before the first child starts: polling the children never waits on it
    device = probe_device() if todo else ""
    _run_all(todo, records, keys, zip_path, manifest, ag_sha, out, device, jobs=jobs, timeout_s=timeout_s,
             limits=box, sandboxed=mode == "bwrap", progress=progress)
    rows = [records[f] for f in files]
    write_csv(out / CSV_NAME, rows, questions)
    (out / "summary.json").write_text(json.dumps({
        "assignment": manifest["assignment"], "autograder": str(zip_path), "autograder_sha256": ag_sha,
        "device": device or "not probed (nothing graded in this run)", "shard": f"{k_n[0]}/{k_n[1]}" if k_n else None,
        "jobs": jobs, "timeout_s": timeout_s, "memory_mb": memory_mb, "sandbox": mode,
        "limits": {"processes": box.processes, "file_size_mb": box.file_size_mb, "cpu_s": box.cpu_s},
        "submissions": len(rows),
        "graded": sum(r["grading_status"] == "graded" for r in rows),
        "ungradable": sum(r["grading_status"] == "ungradable" for r in rows)}, indent=2) + "\n")
    return rows


def _run_all(todo: deque, records: dict, keys: dict, zip_path: Path, manifest: dict, ag_sha: str, out: Path,
             device: str, *, jobs: int, timeout_s, limits: sandbox.Limits, sandboxed: bool,
             progress: bool) -> None:
    """Grade ``todo`` with at most ``jobs`` children at once; fill ``records`` and write each
    results/*.json as its submission finishes."""
    from tqdm import tqdm

    # No tqdm monitor thread: children are started with a preexec_fn, which is
    # only safe to fork from a process without other threads.
    tqdm.monitor_interval = 0
    questions = manifest["questions"]
    running: list[tuple[Path, Job, object, int]] = []
    unpacked = Path(tempfile.mkdtemp(prefix="gradkit-autograder-"))  # the workers' copy; no sandbox mounts it
    autograder = unpack_autograder(zip_path, unpacked)
    workers: dict[int, Worker] = {}
    bar = tqdm(total=len(todo), desc=f"grading {manifest['assignment']}", unit="nb", disable=not progress)
    extra = [] if sandboxed else [sandbox.UNSANDBOXED_FLAG]

    def finish(f: Path, status: str, reason: str, flags: list[str], scores: dict, results, seconds: float,
               peak_rss_mb: float | None = None, phases: dict | None = None) -> None:
        rec = _record(f, keys[f], status, reason, flags + extra, scores or {q: 0.0 for q in questions}, manifest,
                      ag_sha, device, seconds, peak_rss_mb, phases)
        payload = dict(results or {"tests": [], "score": 0}, gradkit=rec)
        (out / "results" / f"{keys[f]}.json").write_text(json.dumps(payload, indent=2) + "\n")
        records[f] = rec
        bar.update(1)

    try:
        while todo or running:
            while todo and len(running) < jobs:
                f = todo.popleft()
                slot = min(set(range(jobs)) - {r[3] for r in running})
                workdir = Path(tempfile.mkdtemp(prefix="gradkit-grade-"))
                t0 = time.monotonic()
                try:
                    prepared = prepare(f, manifest["assignment"], workdir / "submission")
                    if slot not in workers or not workers[slot].alive:
                        workers[slot] = Worker(autograder, limits.memory_mb)
                    job = Job(workers[slot], autograder, prepared, workdir, out / "logs" / f"{keys[f]}.log",
                              timeout_s, limits, sandboxed=sandboxed, slot=slot)
                except Exception as exc:  # noqa: BLE001 - one bad submission must not stop the batch
                    reason = (str(exc) if isinstance(exc, Ungradable)
                              else f"could not start grading: {type(exc).__name__}: {exc}")
                    finish(f, "ungradable", reason, [], {}, None, time.monotonic() - t0)
                    shutil.rmtree(workdir, ignore_errors=True)
                    continue
                running.append((f, job, prepared, slot))
            for item in list(running):
                f, job, prepared, _ = item
                if job.poll():
                    try:
                        status, reason, scores, results = classify(job, prepared, questions,
                                                                   timeout_s=timeout_s, memory_mb=limits.memory_mb)
                    except Exception as exc:  # noqa: BLE001 - e.g. a results.json otter half-wrote
                        status, reason, scores, results = "ungradable", f"could not read the results: {exc}", {}, None
                    finish(f, status, reason, prepared.flags, scores, results, job.seconds, job.peak_rss_mb,
                           job.phases())
                    job.cleanup()
                    running.remove(item)
            time.sleep(0.2)
    finally:
        for _, job, _, _ in running:  # interrupted: leave no kernel behind
            job.kill()
            job.cleanup()
        for worker in workers.values():
            worker.close()
        shutil.rmtree(unpacked, ignore_errors=True)
        bar.close()
