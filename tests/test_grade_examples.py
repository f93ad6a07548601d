"""Every example submission of the four assignments scores what its catalogue
(course/<name>/answers.yml) says, graded with the committed autograders through ``gradkit grade``
(the autograder's harness, each submission's kernel in its sandbox).

The default suite grades every example *name* once: each assignment's solution and blank
notebook, and every other example whose name no earlier assignment's catalogue has (so the
generic malformed notebooks -- syntax error, missing function, import error, infinite loop, NaN,
wrong shape, deleted checks, redefined grader, not JSON -- run on the first assignment, and a2's
tampering and out-of-memory notebooks on a2). The slow suite grades the rest: the generic
malformed notebooks of the later assignments, the other correct ways and the wrong answers (whose
hidden-test outcomes the in-process catalogue tests check too; ``gradkit grade-examples`` grades all).
"""
from pathlib import Path

import pytest

from gradkit_tools.answers import entries
from gradkit_tools.course import assignment, assignments
from gradkit_tools.grade_examples import format_verdicts, grade_examples

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
ASSIGNMENTS = [a.name for a in assignments(COURSE)]  # each has its catalogue answers.yml


def _default_examples(name: str) -> list[str]:
    """The examples of ``name`` the default suite grades (see the module docstring)."""
    earlier = {k for a in ASSIGNMENTS[:ASSIGNMENTS.index(name)] for k in entries(assignment(a, COURSE))}
    return sorted(k for k, e in entries(assignment(name, COURSE)).items()
                  if k in ("correct_solution", "blank")
                  or (e["kind"] in ("blank", "malformed", "tamper") and k not in earlier))


def _grade_examples(name: str, only: list[str] | None = None, exclude: list[str] = ()):
    names = [k for k in (only or entries(assignment(name, COURSE))) if k not in exclude]
    verdicts = grade_examples([name], course=COURSE, autograder=ROOT / "autograder", assignments=ROOT / "assignments",
                              only=names, progress=False)
    table = format_verdicts(verdicts)
    print(table)
    return verdicts, table


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_each_example_name_once_scores_as_recorded(name):
    verdicts, table = _grade_examples(name, _default_examples(name))
    assert verdicts and all(v.ok for v in verdicts), table
    kinds = {v.kind for v in verdicts}
    assert {"correct", "blank"} <= kinds, f"{name}: the solution and the blank notebook: {kinds}"


def test_every_pipeline_example_runs_in_the_default_suite():
    """Every malformed and tamper example name is graded by the default suite for some assignment."""
    names = {k for a in ASSIGNMENTS for k, e in entries(assignment(a, COURSE)).items()
             if e["kind"] in ("malformed", "tamper")}
    assert names and names <= {k for a in ASSIGNMENTS for k in _default_examples(a)}


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_other_examples_score_as_recorded(name):
    """Every example the default suite leaves out: other correct ways (full marks), wrong answers
    (they lose exactly their questions' points), the generic malformed notebooks of this assignment."""
    verdicts, table = _grade_examples(name, exclude=_default_examples(name))
    assert verdicts and all(v.ok for v in verdicts), table
    assert sum(v.kind == "correct" for v in verdicts) >= 2, f"{name}: >= 2 correct ways besides the solution"
