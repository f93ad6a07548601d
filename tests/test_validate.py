"""Issue 6 / 9: every fixture submission of the four assignments scores what its manifest says,
graded with the committed autograders through ``gradkit grade`` (the real ``otter run``).

CI grades the correct, blank, malformed and tamper fixtures (the integrity table of issue 9
included); the wrong answers, which lose exactly their question's points, are graded by the slow
test (``gradkit validate`` grades all of them too).
"""
from pathlib import Path

import pytest

from gradkit.validate import format_verdicts, validate

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "submissions"
ASSIGNMENTS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) if FIXTURES.is_dir() else []


def _validate(name: str, kinds: tuple[str, ...]):
    verdicts = validate([name], fixtures=FIXTURES, autograder=ROOT / "autograder", assignments=ROOT / "assignments",
                        solutions=ROOT / "solutions", kinds=kinds, progress=False)
    table = format_verdicts(verdicts)
    print(table)
    return verdicts, table


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_correct_blank_malformed_and_tamper_fixtures_score_as_recorded(name):
    verdicts, table = _validate(name, ("correct", "blank", "malformed", "tamper"))
    assert verdicts and all(v.ok for v in verdicts), table
    kinds = {v.kind for v in verdicts}
    assert {"correct", "blank", "malformed"} <= kinds, f"{name}: fixtures of every kind CI checks: {kinds}"
    assert sum(v.kind == "correct" for v in verdicts) >= 3, f"{name}: the solution and >= 2 other correct ways"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_wrong_fixtures_lose_exactly_their_questions(name):
    verdicts, table = _validate(name, ("wrong",))
    assert verdicts and all(v.ok for v in verdicts), table
