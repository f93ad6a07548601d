"""The toy fixture assignment, released once per test process (shared by test_release and test_grade).

``tests/fixtures/toy/toy.ipynb`` is a numpy-only master (q1: relu, 2 points,
public + hidden test reading ``tolerances("toy")``; q2: mean_square, 1 point,
hidden test only, deliberately without gradkit.guard so that a ``sys.exit`` in
student code aborts otter's grading; q3: total, 1 point, public test).
``tests/fixtures/toy/grading.yml`` holds its tolerance.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY_MASTER = FIXTURES / "toy" / "toy.ipynb"
TOY_CONFIG = FIXTURES / "toy" / "grading.yml"
SUBMISSIONS = FIXTURES / "toy_submissions"


def make_tree(root: Path) -> Path:
    """A project tree ``root/solutions/toy/toy.ipynb`` (no generated output yet)."""
    (root / "solutions" / "toy").mkdir(parents=True, exist_ok=True)
    shutil.copy(TOY_MASTER, root / "solutions" / "toy" / "toy.ipynb")
    return root


def release_tree(root: Path, **kwargs) -> list:
    """Run gradkit.release.release on the tree at ``root`` with the toy grading.yml."""
    from gradkit.release import release

    return release(solutions=root / "solutions", assignments=root / "assignments",
                   autograder=root / "autograder", config=TOY_CONFIG, **kwargs)


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
