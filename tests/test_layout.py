"""The layout: packages split by where they run, one folder per assignment, ruff-clean sources.

* ``gradkit`` (what students install) imports neither the hidden-test runtime ``gradkit_grader``
  nor the tool chain ``gradkit_tools``; ``gradkit_grader`` and every ``course/*/statistics.py``
  (shipped in zips) import no tool chain. Checked on the import statements of every source file.
* Every autograder zip carries the packages ``gradkit`` and ``gradkit_grader`` whole, its own
  assignment's statistics and no other's, and nothing of ``gradkit_tools``.
* A course folder is found by its master: the toy course's assignment (master, tolerances,
  statistics, nothing else registered anywhere) is released with its statistics and swept.
* ``ruff check`` passes (line length, import order, pyflakes): the test command enforces it.
* Every module that binds names declares its public ones in ``__all__`` (two scripts exempt, with reasons).
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from _toy import TOY_COURSE, released_toy

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
COURSES = sorted(p.parent.name for p in (ROOT / "course").glob("*/*.ipynb") if p.stem == p.parent.name)


def _imported_top_levels(path: Path) -> set[str]:
    """Top-level package names a source file imports (absolute imports; relative ones stay inside)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _importlib_targets(path: Path) -> set[str]:
    """String literals passed to ``import_module`` / ``__import__`` naming one of our packages."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"):
            for arg in node.args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    out.add(arg.value.split(".")[0])
    return out


@pytest.mark.parametrize("package, forbidden", [
    ("gradkit", {"gradkit_grader", "gradkit_tools", "otter"}),
    ("gradkit_grader", {"gradkit_tools", "otter"}),
])
def test_imports_go_one_way(package, forbidden):
    files = sorted((SRC / package).rglob("*.py"))
    if package == "gradkit_grader":
        files += [ROOT / "course" / n / "statistics.py" for n in COURSES
                  if (ROOT / "course" / n / "statistics.py").is_file()]
    assert files
    # the harness runs otter's test files with otter's own runner and writes otter's results format;
    # nothing else of the runtime (what hidden tests import) needs otter
    allowed = {SRC / "gradkit_grader" / "harness.py": {"otter"}}
    bad = {str(f.relative_to(ROOT)): sorted((_imported_top_levels(f) | _importlib_targets(f))
                                            & (forbidden - allowed.get(f, set())))
           for f in files}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"{package} must not import {sorted(forbidden)}: {bad}"


def test_the_import_check_sees_a_violation(tmp_path):
    """The checker itself catches both spellings of a forbidden import (it cannot pass vacuously)."""
    f = tmp_path / "m.py"
    f.write_text("import gradkit_tools.release\nfrom importlib import import_module\n"
                 "import_module('gradkit_grader.x')\n")
    assert _imported_top_levels(f) >= {"gradkit_tools"} and _importlib_targets(f) == {"gradkit_grader"}


@pytest.mark.parametrize("name", COURSES)
def test_zip_ships_runtime_and_its_own_modules_only(name):
    """A zip carries the runtime packages and its own assignment's modules (statistics, reference
    answers): no other assignment's."""
    manifest = json.loads((ROOT / "autograder" / name / "manifest.json").read_text())
    files = set(manifest["files"])
    for package in ("gradkit", "gradkit_grader"):
        sources = {f"files/{package}/{p.relative_to(SRC / package).as_posix()}"
                   for p in (SRC / package).rglob("*.py") if "__pycache__" not in p.parts}
        assert sources <= files, f"{name}: zip misses {sorted(sources - files)}"
    own = {f"files/gradkit_grader/course/{name}/{p.name}" for p in (ROOT / "course" / name).glob("*.py")}
    shipped = {f for f in files if f.startswith("files/gradkit_grader/course/") and not f.endswith("/__init__.py")}
    assert shipped == own and own >= {f"files/gradkit_grader/course/{name}/statistics.py"}, shipped ^ own
    assert not any(f.startswith("files/gradkit_tools") for f in files)


def test_every_assignment_folder_has_its_parts():
    assert COURSES, "no assignment folder under course/"
    for name in COURSES:
        folder = ROOT / "course" / name
        missing = [p for p in ("tolerances.yml", "statistics.py", "answers.yml", "calibration.json", "NOTES.md")
                   if not (folder / p).is_file()]
        assert not missing, f"course/{name} lacks {missing}"


def test_a_new_assignment_folder_is_picked_up(tmp_path):
    """The toy assignment is a folder and nothing else: the course finds it, release ships its
    statistics, and the calibration tools run its checks (with the course given as a folder)."""
    from gradkit_tools.calibrate import checks_of, sweep
    from gradkit_tools.course import assignments

    course = shutil.copytree(TOY_COURSE, tmp_path / "course")
    assert [a.name for a in assignments(course)] == ["toy"]
    entries = zipfile.ZipFile(released_toy() / "autograder" / "toy" / "autograder.zip").namelist()
    assert "files/gradkit_grader/course/toy/statistics.py" in entries
    assert not any("a1_clipping" in e for e in entries)
    (check,) = checks_of("toy", course)
    assert check.test == "test_relu_hidden_grid"
    (report,) = sweep("toy", 5, course=course, power_runs=3, progress=False)
    assert report.runs == 5 and report.false_fails == 0 and report.mean == 0.0
    assert report.power["wrong_relu_abs"]["fails"] == 3  # |x| differs from max(x, 0) on every draw


def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


#: modules never imported as modules, so without a public interface to declare
_SCRIPTS = {
    "src/gradkit_tools/gradechild.py": "run as a script in the grading environment (device probe)",
    "src/gradkit_grader/kernelshim.py": "sent to the student's kernel as source text",
}


def _targets(node: ast.stmt) -> list[ast.expr]:
    """What an assignment statement assigns to; [] for any other statement."""
    return node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []


def _module_names(tree: ast.Module) -> set[str]:
    """Names a module binds at top level (definitions, assignments, imports)."""
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif _targets(node):
            for target in _targets(node):
                out |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import) or isinstance(node, ast.ImportFrom) and node.module != "__future__":
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


def test_every_module_declares_its_names():
    """Each library and course module that binds names lists its public ones in ``__all__``, and each listed name
    exists."""
    files = sorted(p for root in (SRC, ROOT / "course") for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    assert len(files) > 50
    problems = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in _SCRIPTS or path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(), rel)
        if not _module_names(tree):  # a package's docstring alone: nothing to declare
            continue
        declared = [n for n in tree.body if any(isinstance(t, ast.Name) and t.id == "__all__" for t in _targets(n))]
        if not declared:
            problems.append(f"{rel}: no __all__")
            continue
        try:
            listed = ast.literal_eval(declared[0].value)
        except ValueError:  # computed: gradkit's lazy exports (tests/test_student_package.py resolves each name)
            continue
        missing = sorted(set(listed) - _module_names(tree))
        if missing:
            problems.append(f"{rel}: __all__ lists {missing}, which it does not define")
    assert not problems, "\n".join(problems)
    assert set(_SCRIPTS) <= {p.relative_to(ROOT).as_posix() for p in files}, "an exempted script moved"
