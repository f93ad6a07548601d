"""Every example submission of the four assignments scores what its catalogue
(course/<name>/answers.yml) says, graded with the committed autograders through ``gradkit grade``
(the real ``otter run``).

CI grades the correct, blank, malformed and tamper examples (the grading-integrity
entries included); the wrong answers, which lose exactly their question's points, are graded by the slow
test (``gradkit grade-examples`` grades all of them too).
"""
from pathlib import Path

import pytest

from gradkit_tools.course import assignments
from gradkit_tools.grade_examples import format_verdicts, grade_examples

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
ASSIGNMENTS = [a.name for a in assignments(COURSE)]  # each has its catalogue answers.yml


def _grade_examples(name: str, kinds: tuple[str, ...]):
    verdicts = grade_examples([name], course=COURSE, autograder=ROOT / "autograder", assignments=ROOT / "assignments",
                              kinds=kinds, progress=False)
    table = format_verdicts(verdicts)
    print(table)
    return verdicts, table


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_correct_blank_malformed_and_tamper_examples_score_as_recorded(name):
    verdicts, table = _grade_examples(name, ("correct", "blank", "malformed", "tamper"))
    assert verdicts and all(v.ok for v in verdicts), table
    kinds = {v.kind for v in verdicts}
    assert {"correct", "blank", "malformed"} <= kinds, f"{name}: examples of every kind CI checks: {kinds}"
    assert sum(v.kind == "correct" for v in verdicts) >= 3, f"{name}: the solution and >= 2 other correct ways"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_wrong_examples_lose_exactly_their_questions(name):
    verdicts, table = _grade_examples(name, ("wrong",))
    assert verdicts and all(v.ok for v in verdicts), table
