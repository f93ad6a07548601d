"""Every example submission of the four assignments scores what its catalogue
(course/<name>/answers.yml) says, graded with the committed autograders through ``gradkit grade``
(the real ``otter run``).

CI grades the solution, the blank, malformed and tamper examples (the grading-integrity
entries included); the other correct ways and the wrong answers, whose hidden-test outcomes the
in-process catalogue tests check, are graded end to end by the slow test (``gradkit grade-examples``
grades all of them too).
"""
from pathlib import Path

import pytest

from gradkit_tools.course import assignments
from gradkit_tools.grade_examples import format_verdicts, grade_examples

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
ASSIGNMENTS = [a.name for a in assignments(COURSE)]  # each has its catalogue answers.yml


def _grade_examples(name: str, kinds: tuple[str, ...], only_correct: str | None = None):
    from gradkit_tools.answers import entries
    from gradkit_tools.course import assignment

    only = None
    if only_correct:
        only = [k for k, e in entries(assignment(name, COURSE)).items()
                if e["kind"] in kinds and (e["kind"] != "correct" or k == only_correct)]
    verdicts = grade_examples([name], course=COURSE, autograder=ROOT / "autograder", assignments=ROOT / "assignments",
                              kinds=kinds, only=only, progress=False)
    table = format_verdicts(verdicts)
    print(table)
    return verdicts, table


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_blank_malformed_and_tamper_examples_score_as_recorded(name):
    verdicts, table = _grade_examples(name, ("correct", "blank", "malformed", "tamper"),
                                      only_correct="correct_solution")
    assert verdicts and all(v.ok for v in verdicts), table
    kinds = {v.kind for v in verdicts}
    assert {"correct", "blank", "malformed"} <= kinds, f"{name}: examples of every kind CI checks: {kinds}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_other_correct_and_wrong_examples_score_as_recorded(name):
    """The other correct ways (full marks) and the wrong answers (they lose exactly their questions'
    points); their hidden-test outcomes are also checked in process by tests/test_<name>.py."""
    verdicts, table = _grade_examples(name, ("correct", "wrong"))
    assert verdicts and all(v.ok for v in verdicts), table
    assert sum(v.kind == "correct" for v in verdicts) >= 3, f"{name}: the solution and >= 2 other correct ways"
