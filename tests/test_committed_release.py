"""The committed assignments/ and autograder/ are exactly what `gradkit release` generates now.

This is `gradkit release --check` on the repository (issue 5: CI runs it): a hand edit of a
generated file, a master or grading.yml changed without re-releasing, or a library change that
alters the gradkit sources shipped inside the autograder zips all fail here, with the list of files.
"""
from pathlib import Path

import pytest

from gradkit.release import StaleReleaseError, find_masters, release

ROOT = Path(__file__).resolve().parents[1]


def test_committed_release_is_current():
    masters = find_masters(ROOT / "solutions")
    assert masters, "no master notebooks under solutions/"
    try:
        done = release(ROOT / "solutions", ROOT / "assignments", ROOT / "autograder", check=True,
                       config=ROOT / "grading.yml")
    except StaleReleaseError as exc:
        pytest.fail("committed release is stale; run `gradkit release` and commit:\n" + str(exc))
    assert {r.name for r in done} == {name for name, _ in masters}
