"""The committed assignments/ and autograder/ are exactly what `gradkit release` generates now.

This is `gradkit release --check` on the repository (CI runs it): a hand edit of a
generated file, a master, tolerances.yml or statistics.py changed without re-releasing, or a library
change that alters the gradkit / gradkit_grader sources shipped inside the autograder zips all fail
here, with the list of files.
"""
from pathlib import Path

import pytest

from gradkit_tools.course import assignments
from gradkit_tools.release import StaleReleaseError, release

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"


def test_committed_release_is_current():
    chosen = assignments(COURSE)
    assert chosen, "no master notebooks course/<name>/<name>.ipynb"
    try:
        done = release(COURSE, ROOT / "assignments", ROOT / "autograder", check=True)
    except StaleReleaseError as exc:
        pytest.fail("committed release is stale; run `gradkit release` and commit:\n" + str(exc))
    assert {r.name for r in done} == {a.name for a in chosen}
