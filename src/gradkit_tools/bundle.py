"""What an autograder zip carries of the kit, and how it runs it (:mod:`gradkit_tools.release` writes the zip).

The zip carries the :data:`RUNTIME_PACKAGES` whole and the assignment's own grader modules
(:func:`runtime_sources`), installs gradkit's dependencies (:func:`runtime_requirements`), and its
``run_autograder`` runs :data:`RUN_GRADKIT` (gradkit's harness) in place of otter's ``run_otter.py``.
:func:`zip_questions` reads back the points of each question with otter's own loader.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from gradkit_tools.course import Assignment
from gradkit_tools.wheel import PYPROJECT

__all__ = ["RUNTIME_PACKAGES", "RUN_GRADKIT", "runtime_sources", "runtime_requirements", "zip_questions"]

#: Packages shipped in every autograder zip: what the hidden tests import. The tool chain
#: (``gradkit_tools``) is a package of its own and never ships.
RUNTIME_PACKAGES = ("gradkit", "gradkit_grader")


def _package_files(package: str) -> dict[str, bytes]:
    """``{path/inside/package.py: bytes}`` of an importable package's sources (no caches)."""
    root = Path(importlib.import_module(package).__file__).resolve().parent
    return {f"{package}/{p.relative_to(root).as_posix()}": p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in (".py", ".typed") and "__pycache__" not in p.parts}


def runtime_sources(assignment: Assignment) -> dict[str, bytes]:
    """What an autograder zip of ``assignment`` carries of the kit: ``{path: bytes}``.

    Every source of the :data:`RUNTIME_PACKAGES` (a whole package: what belongs to it is decided
    by where the file lives, not by a list), and the assignment's own modules (``statistics.py``,
    ``reference.py``: :attr:`Assignment.grader_modules`) as ``gradkit_grader/course/<name>/``; no
    other assignment's.
    """
    files: dict[str, bytes] = {}
    for package in RUNTIME_PACKAGES:
        files.update(_package_files(package))
    for module in assignment.grader_modules:
        files[f"gradkit_grader/course/{assignment.name}/{module.name}"] = module.read_bytes()
    return dict(sorted(files.items()))


def runtime_requirements() -> list[str]:
    """gradkit's dependencies (pyproject.toml next to the sources, else the installed metadata), minus otter."""
    try:
        import tomllib  # Python >= 3.11

        deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    except (ImportError, OSError):  # pragma: no cover - Python 3.10, or installed from a wheel
        from importlib.metadata import requires

        deps = [r for r in requires("gradkit") or [] if "extra ==" not in r]
    return [d for d in deps if not re.match(r"otter[-_]grader\b", d)]


#: what the zip's ``run_autograder`` runs in place of otter's ``run_otter.py``: gradkit's harness, so that
#: Gradescope and ``otter grade`` grade as ``gradkit grade`` does
RUN_GRADKIT = b'''"""Grade the submission with gradkit's harness (written by `gradkit release`).

Run as ``python /autograder/source/run_gradkit.py``: the autograder's root is the folder above the
one this file is in (``/autograder`` on Gradescope). Hidden tests run in this process; the
student's notebook runs in a kernel of its own.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "source" / "files"))

from gradkit_grader.harness import gradescope  # noqa: E402

if __name__ == "__main__":
    sys.exit(gradescope(str(ROOT)))
'''


def zip_questions(zip_entries: dict[str, bytes], tmp: Path) -> dict[str, float]:
    """Points possible per question, read with otter's own test-file loader."""
    from otter.test_files import ExceptionTestFile, OKTestFile

    out = {}
    for entry in sorted(e for e in zip_entries if re.fullmatch(r"tests/[^/]+\.py", e)):
        path = tmp / Path(entry).name
        path.write_bytes(zip_entries[entry])
        env: dict[str, Any] = {}
        exec(compile(zip_entries[entry], entry, "exec"), env)  # our own generated test file
        tf = (OKTestFile if env.get("OK_FORMAT") else ExceptionTestFile).from_file(str(path))
        out[tf.name] = float(tf.possible)
    return out
