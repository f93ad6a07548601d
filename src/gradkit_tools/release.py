"""``gradkit release``: student notebooks and autograders from the master notebooks.

For every assignment folder ``course/<name>/`` (:mod:`gradkit_tools.course`) release

1. copies the master ``<name>.ipynb`` (and the files its ASSIGNMENT CONFIG lists) to a
   temporary directory and, in that copy, bakes the tolerances (every
   ``tolerances("<name>")`` call becomes the literal dict of ``tolerances.yml``) and adds to
   the ASSIGNMENT CONFIG what the autograder needs to be self-contained: the packages
   ``gradkit`` (student side) and ``gradkit_grader`` (hidden-test runtime) with this
   assignment's modules (``statistics.py``, ``reference.py``) under ``gradkit_grader/course/<name>/``, as
   ``autograder_files`` folders, and their dependencies as ``requirements`` (:mod:`gradkit_tools.bundle`);
2. runs the real ``otter assign`` with its test run on (it grades the solution
   with the new autograder and must score full marks);
3. normalises the output so that a re-run is byte-identical, writes
   ``assignments/<name>/`` (student notebook, support files) and
   ``autograder/<name>/`` (``autograder.zip``; ``solution.ipynb``, otter's
   solution notebook, the reference submission; ``manifest.json``: sha256 of
   every zip entry and the points of every question), each with a
   ``GENERATED.md`` banner;
4. scans the student folder for solution code, hidden tests and otter markers;
5. builds the student package, ``assignments/gradkit-<version>-py3-none-any.whl``
   (:mod:`gradkit_tools.wheel`): the ``gradkit`` package alone, which holds no answer to any
   stub (those live in ``course/<name>/reference.py`` and ship in that assignment's zip only).

``check=True`` regenerates into a temporary folder and compares instead of
writing: CI runs ``gradkit release --check``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import nbformat
import yaml

from gradkit_grader.harness import FORBIDDEN_FILE
from gradkit_tools import reproducible
from gradkit_tools.bundle import RUN_GRADKIT, RUNTIME_PACKAGES, runtime_requirements, runtime_sources, zip_questions
from gradkit_tools.course import Assignment, ConfigError, find_course, forbidden, tolerances
from gradkit_tools.course import assignments as course_assignments
from gradkit_tools.master import MasterError, config_cell
from gradkit_tools.scan import scan_release
from gradkit_tools.tamper import to_python
from gradkit_tools.wheel import student_wheel, wheel_banner

__all__ = ["ReleaseError", "StaleReleaseError", "Released", "release", "bake_tolerances", "BANNER_FILE",
           "MANIFEST_FILE", "ZIP_FILE", "SOLUTION_FILE"]

BANNER_FILE = "GENERATED.md"
MANIFEST_FILE = "manifest.json"
ZIP_FILE = "autograder.zip"
SOLUTION_FILE = "solution.ipynb"
#: Grading-image Python when a master does not set ``python_version`` (otter's
#: own default is 3.13); the version gradkit is developed and tested with.
DEFAULT_PYTHON = "3.11"
_TOL_CALL = re.compile(r"""\b(?:gradkit_tools\.course\.)?tolerances\(\s*(['"])([^'"\\]+)\1\s*\)""")
_TOL_IMPORT = re.compile(r"^[ \t]*from[ \t]+gradkit_tools\.course[ \t]+import[ \t]+tolerances[ \t]*(?:#.*)?\n?",
                         re.MULTILINE)


class ReleaseError(RuntimeError):
    """A master cannot be released (bad master, otter failed, a leak); the message says which and why."""


class StaleReleaseError(ReleaseError):
    """``release(check=True)`` found committed output that differs from a fresh release."""

    def __init__(self, differences: list[str]):
        self.differences = differences
        super().__init__("generated files are stale; run `gradkit release` and commit the result:\n  "
                         + "\n  ".join(differences))


@dataclass
class Released:
    """What :func:`release` produced for one assignment."""

    name: str
    student_dir: Path
    autograder_dir: Path
    questions: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------- masters

def bake_tolerances(nb: Any, course: str | Path | None = None, *, where: str = "master") -> int:
    """Replace ``tolerances("<name>")`` in the code cells of ``nb`` by its literal dict.

    ``from gradkit_tools.course import tolerances`` lines are removed, so a baked
    hidden test imports nothing of the tool chain. Returns the number of calls replaced.

    Raises
    ------
    ReleaseError
        When a cell still mentions ``tolerances`` after baking (a call release
        cannot evaluate, e.g. with a variable argument), or no longer parses.
    """
    count = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "tolerances" not in cell.source:
            continue
        src, n = _TOL_CALL.subn(lambda m: repr(tolerances(m.group(2), course)), cell.source)
        src = _TOL_IMPORT.sub("", src)
        if re.search(r"\btolerances\b", src):
            raise ReleaseError(f"{where} cell {i}: cannot bake this use of tolerances; write "
                               f"`tol = tolerances(\"<assignment>\")` with a literal name:\n{cell.source}")
        try:
            compile(to_python(src), f"<cell {i}>", "exec")
        except SyntaxError as exc:
            raise ReleaseError(f"{where} cell {i}: does not parse after baking tolerances "
                               f"({exc.msg}):\n{src}") from None
        cell.source, count = src, count + n
    return count


def _prepare(assignment: Assignment, work: Path, course: Path) -> Path:
    """Copy the master (and the files its config lists) into ``work``, make the copy releasable;
    return its path."""
    master, name = assignment.master, assignment.name
    nb = nbformat.read(str(master), as_version=4)
    try:
        idx, cfg = config_cell(nb)
    except MasterError as exc:
        raise ReleaseError(f"{master}: {exc}") from None
    if cfg.setdefault("name", name) != name:
        raise ReleaseError(f"{master}: ASSIGNMENT CONFIG has name: {cfg['name']!r}; "
                           f"it must equal the folder name {name!r}")
    if cfg.get("generate") is False:
        raise ReleaseError(f"{master}: `generate: false` makes no autograder; remove it")
    cfg.pop("run_tests", None)  # assign's own test run stays on (default true)
    work.mkdir(parents=True)
    listed = [*cfg.get("files", []), *cfg.get("autograder_files", [])]
    if isinstance(cfg.get("requirements"), str):
        listed.append(cfg["requirements"])
    for rel in listed:
        src = master.parent / rel
        if not src.exists():
            raise ReleaseError(f"{master}: ASSIGNMENT CONFIG lists {rel!r}, which is not in {master.parent}")
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, work / rel)
    support = runtime_sources(assignment)
    for package in sorted({path.split("/")[0] for path in support}):
        if (work / package).exists():
            raise ReleaseError(f"{master.parent}/{package} exists; release adds the kit's sources under that name")
    for path, data in support.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    cfg["autograder_files"] = [*cfg.get("autograder_files", []), *RUNTIME_PACKAGES]
    reqs = cfg.get("requirements") or []
    if isinstance(reqs, str):
        reqs = [ln.strip() for ln in (master.parent / reqs).read_text().splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    cfg["requirements"] = [*reqs, *(r for r in runtime_requirements() if r not in reqs)]
    cfg.setdefault("python_version", DEFAULT_PYTHON)
    nb.cells[idx].source = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(cfg, sort_keys=False)
    bake_tolerances(nb, course, where=str(master))
    nb.metadata["kernelspec"] = dict(reproducible.PYTHON3_KERNELSPEC)  # assign launches this kernel
    out = work / master.name
    nbformat.write(nb, str(out))
    return out


def _run_assign(master: Path, result: Path) -> None:
    cmd = [sys.executable, "-m", "otter", "assign", "-v", str(master), str(result)]
    proc = subprocess.run(cmd, cwd=master.parent, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-4000:]
        raise ReleaseError(f"`otter assign` failed for {master.name} (exit {proc.returncode}); "
                           f"its test run must give the solution full marks:\n{tail}")


def _run_harness(entries: dict[str, bytes]) -> dict[str, bytes]:
    """otter's zip entries with ``run_autograder`` running :data:`RUN_GRADKIT` instead of ``run_otter.py``."""
    script = entries.get("run_autograder", b"")
    if b"run_otter.py" not in script or "run_otter.py" not in entries:
        raise ReleaseError("otter assign wrote a run_autograder that does not run run_otter.py; "
                           "this otter version is not supported")
    out = {k: v for k, v in entries.items() if k != "run_otter.py"}
    out["run_autograder"] = script.replace(b"run_otter.py", b"run_gradkit.py")
    out["run_gradkit.py"] = RUN_GRADKIT
    return dict(sorted(out.items()))


def _banner(source: str, what: str) -> str:
    return (f"# Generated files: do not edit by hand\n\n"
            f"This folder ({what}) is generated by `gradkit release` from `{source}`.\n"
            f"Edit the master notebook (or its tolerances.yml) and run `gradkit release`;\n"
            f"CI runs `gradkit release --check` and fails when this folder is stale.\n")


def _release_one(assignment: Assignment, assignments: Path, autograder: Path, course: Path, tmp: Path) -> Released:
    t0 = time.perf_counter()
    name, master = assignment.name, assignment.master
    work = tmp / "masters" / name
    baked = _prepare(assignment, work, course)
    result = tmp / "assign" / name
    _run_assign(baked, result)
    zips = sorted((result / "autograder").glob("*.zip"))
    if len(zips) != 1:
        raise ReleaseError(f"otter assign wrote {len(zips)} zips for {name}: {[z.name for z in zips]}")
    source = f"{master.parent.parent.name}/{name}/{master.name}"

    student = assignments / name
    for rel, path in reproducible.tree_files(result / "student").items():
        dest = student / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".ipynb"):
            dest.write_text(reproducible.normalize_notebook(path.read_text()))
        else:
            dest.write_bytes(path.read_bytes())
    (student / BANNER_FILE).write_text(_banner(source, "student release"))

    entries = _run_harness(reproducible.read_zip(zips[0]))
    entries[FORBIDDEN_FILE] = (json.dumps(forbidden(name, course), indent=1, sort_keys=True) + "\n").encode()
    entries = dict(sorted(entries.items()))
    questions = zip_questions(entries, tmp)
    ag = autograder / name
    ag.mkdir(parents=True, exist_ok=True)
    reproducible.write_zip(entries, ag / ZIP_FILE)
    # otter's solution notebook (every test in its metadata): the reference submission
    # that `gradkit main` grades next to the blank student release.
    (ag / SOLUTION_FILE).write_text(
        reproducible.normalize_notebook((result / "autograder" / f"{name}.ipynb").read_text()))
    import otter

    manifest = {
        "assignment": name,
        "generated_by": "gradkit release",
        "source": source,
        "otter_version": otter.__version__,
        "zip_sha256": reproducible.sha256_file(ag / ZIP_FILE),
        "questions": questions,
        "points_possible": sum(questions.values()),
        "files": {e: reproducible.sha256_bytes(entries[e]) for e in sorted(entries)},
    }
    (ag / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (ag / BANNER_FILE).write_text(_banner(source, "autograder"))

    leaks = scan_release(student, baked, label=f"{assignments.name}/{name}")
    if leaks:
        raise ReleaseError(f"student release of {name} leaks solution or hidden-test content:\n  "
                           + "\n  ".join(map(str, leaks)))
    return Released(name, student, ag, questions, time.perf_counter() - t0)


def release(course: str | Path | None = None, assignments: str | Path = "assignments",
            autograder: str | Path = "autograder", names: Iterable[str] | None = None,
            check: bool = False) -> list[Released]:
    """Generate (or, with ``check``, verify) student releases and autograders.

    Parameters
    ----------
    course : path, optional
        The course folder (default :func:`gradkit_tools.course.find_course`): its assignment
        folders ``<name>/`` with their masters and tolerances.
    assignments, autograder : path
        Output folders of the student releases and of the autograders.
    names : iterable of str, optional
        Assignments to release; default all of the course.
    check : bool
        Regenerate into a temporary folder and compare with the committed
        output instead of writing; also re-scans the committed student folders
        for leaks.

    Returns
    -------
    list of Released
        One per assignment (paths refer to the temporary copy when ``check``).

    Raises
    ------
    ReleaseError
        A master is malformed, ``otter assign`` failed (including its test run
        not giving the solution full marks), or the student release leaks.
    StaleReleaseError
        With ``check``, when committed output is missing, differs or is extra;
        the message lists every file.
    """
    course = find_course(course)
    try:
        chosen = course_assignments(course, names)
    except ConfigError as exc:
        raise ReleaseError(str(exc)) from None
    assignments, autograder = Path(assignments), Path(autograder)
    with tempfile.TemporaryDirectory(prefix="gradkit-release-") as tmp_name:
        tmp = Path(tmp_name)
        out_a, out_g = (tmp / "out" / assignments.name, tmp / "out" / autograder.name) if check \
            else (tmp / "stage" / assignments.name, tmp / "stage" / autograder.name)
        done = [_release_one(a, out_a, out_g, course, tmp) for a in chosen]
        wheel = student_wheel(out_a)
        (out_a / BANNER_FILE).write_text(wheel_banner(wheel.name))
        if check:
            diffs: list[str] = []
            for f in (wheel.name, BANNER_FILE):
                if not (assignments / f).is_file():
                    diffs.append(f"missing: {assignments}/{f}")
                elif (assignments / f).read_bytes() != (out_a / f).read_bytes():
                    diffs.append(f"differs: {assignments}/{f}")
            diffs += [f"extra: {w}" for w in sorted(assignments.glob("gradkit-*.whl")) if w.name != wheel.name]
            for r in done:
                diffs += reproducible.diff_trees(out_a / r.name, assignments / r.name, label=f"{assignments}/{r.name}")
                diffs += reproducible.diff_trees(out_g / r.name, autograder / r.name, label=f"{autograder}/{r.name}")
                if (assignments / r.name).is_dir():
                    baked = tmp / "masters" / r.name / f"{r.name}.ipynb"
                    diffs += [f"leak: {leak}" for leak in
                              scan_release(assignments / r.name, baked, label=f"{assignments}/{r.name}")]
            if names is None:
                released = {r.name for r in done}
                for root in (assignments, autograder):
                    diffs += [f"extra: {d}/ (generated folder without a master)" for d in sorted(root.glob("*"))
                              if d.is_dir() and d.name not in released and (d / BANNER_FILE).is_file()]
            if diffs:
                raise StaleReleaseError(diffs)
            return done
        assignments.mkdir(parents=True, exist_ok=True)
        for old in assignments.glob("gradkit-*.whl"):
            old.unlink()
        for f in (wheel.name, BANNER_FILE):
            shutil.copyfile(out_a / f, assignments / f)
        for r in done:  # all assignments built and scanned: now replace the committed folders
            for staged, final in ((out_a / r.name, assignments / r.name), (out_g / r.name, autograder / r.name)):
                if final.exists():
                    shutil.rmtree(final)
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(staged, final)
            r.student_dir, r.autograder_dir = assignments / r.name, autograder / r.name
        return done
