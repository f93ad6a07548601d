"""The toy fixture assignment, released once per test process (shared by test_release and test_grade).

``tests/fixtures/toy/course/toy/toy.ipynb`` is a numpy-only master (q1: relu, 2 points,
public + hidden test reading ``tolerances("toy")``; q2: mean_square, 1 point,
hidden test only, deliberately without gradkit.guard so that a ``sys.exit`` in
student code aborts otter's grading; q3: total, 1 point, public test).
``tests/fixtures/toy/course/toy/tolerances.yml`` holds its tolerance, and
``tests/fixtures/toy/course/grading.yml`` the toy course's grading limits.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY_COURSE = FIXTURES / "toy" / "course"
TOY_MASTER = TOY_COURSE / "toy" / "toy.ipynb"
SUBMISSIONS = FIXTURES / "toy_submissions"


def make_tree(root: Path) -> Path:
    """A project tree ``root/course/`` holding the toy course (no generated output yet)."""
    shutil.copytree(TOY_COURSE, root / "course", dirs_exist_ok=True)
    return root


def release_tree(root: Path, **kwargs) -> list:
    """Run gradkit_tools.release.release on the tree at ``root``."""
    from gradkit_tools.release import release

    return release(root / "course", assignments=root / "assignments", autograder=root / "autograder", **kwargs)


@lru_cache(maxsize=None)
def released_toy() -> Path:
    """Root of a released toy tree (built once per process; treat as read-only, copy to modify)."""
    root = Path(tempfile.mkdtemp(prefix="gradkit-toy-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    release_tree(make_tree(root))
    return root


def copy_tree(dest: Path) -> Path:
    """A writable copy of the released toy tree under ``dest``."""
    shutil.copytree(released_toy(), dest, dirs_exist_ok=True)
    return dest
