"""gradkit_tools.examples / gradkit_tools.grade_examples: example submissions built from an assignment's
catalogue of answers (course/<name>/answers.yml), graded with known scores. Built on the toy assignment
(q1 relu 2 pts, q2 mean_square 1 pt, q3 total 1 pt)."""
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from _toy import TOY_MASTER, copy_tree
from gradkit_tools.cli import main
from gradkit_tools.course import Assignment, assignment, assignments
from gradkit_tools.examples import (
    CatalogueError,
    answer_cells,
    build_submission,
    expected_scores,
    load_catalogue,
    solution_answers,
    write_submissions,
)

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"

RELU_WHERE = "def relu(x):\n    return np.where(np.asarray(x) > 0, x, 0.0)"
CATALOGUE = {
    "assignment": "toy",
    "submissions": {
        "correct_solution": {"kind": "correct"},
        "correct_relu_where": {"kind": "correct", "answers": {"q1": {"code": RELU_WHERE}}},
        "wrong_relu_abs": {"kind": "wrong", "why": "absolute value instead of max(x, 0)",
                           "answers": {"q1": {"replace": [["np.maximum(np.asarray(x, dtype=float), 0.0)",
                                                           "np.abs(x)"]]}},
                           "expect": {"q1": 0}, "fails": ["test_relu_hidden_grid"]},
        "blank": {"kind": "blank", "blank": True},
        "malformed_not_json": {"kind": "malformed", "raw": "not a notebook {", "status": "ungradable",
                               "reason": "not a valid notebook"},
        "tamper_grader": {"kind": "tamper", "blank": True, "extra_cells": ["grader = None"],
                          "flags": "rebinds grader"},
    },
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A released toy tree whose course has a catalogue ``course/toy/answers.yml``."""
    root = copy_tree(tmp_path_factory.mktemp("toy"))
    (root / "course" / "toy" / "answers.yml").write_text(yaml.safe_dump(CATALOGUE))
    return root


def _toy(root: Path) -> Assignment:
    return assignment("toy", root / "course")


def _build(root, name):
    student = json.loads((root / "assignments" / "toy" / "toy.ipynb").read_text())
    sols = solution_answers(_toy(root).master)
    entry = load_catalogue(_toy(root).answers_file)[name]
    return student, json.loads(build_submission(name, entry, student, sols, "toy"))


def test_answers_land_in_their_questions_cells(toy):
    student, nb = _build(toy, "wrong_relu_abs")
    cells = answer_cells(student, solution_answers(toy / "course" / "toy" / "toy.ipynb"))
    assert sorted(cells) == ["q1", "q2", "q3"]
    src = lambda nb_, q: "".join(nb_["cells"][cells[q][0]]["source"])  # noqa: E731
    assert "np.abs(x)" in src(nb, "q1") and "BEGIN SOLUTION" not in src(nb, "q1")
    assert "np.mean" in src(nb, "q2")  # other questions: the solution
    _, blank = _build(toy, "tamper_grader")
    assert src(blank, "q1") == src(student, "q1") and blank["cells"][-1]["source"] == "grader = None"


def test_write_check_and_errors(toy, tmp_path, capsys):
    a = _toy(toy)
    assert a.submissions_dir == toy / "course" / "toy" / "submissions"
    assert load_catalogue(a.answers_file)["wrong_relu_abs"]["fails"] == ["test_relu_hidden_grid"]
    kw = dict(assignments=toy / "assignments")
    paths = write_submissions(a, **kw)
    assert len(paths) == 6 and all(p.is_file() and p.parent == a.submissions_dir for p in paths)
    assert "gradkit examples toy" in (a.submissions_dir / "GENERATED.md").read_text()
    write_submissions(a, check=True, **kw)  # byte-identical rebuild
    assert main(["examples", "toy", "--course", str(toy / "course"), "--assignments", str(toy / "assignments"),
                 "--check"]) == 0
    assert "toy: 6 example submissions up to date" in capsys.readouterr().out
    paths[0].write_text(paths[0].read_text() + " ")
    with pytest.raises(CatalogueError, match="differs from a fresh build"):
        write_submissions(a, check=True, **kw)
    assert main(["examples", "toy", "--course", str(toy / "course"), "--assignments", str(toy / "assignments"),
                 "--check"]) == 1
    assert "differs from a fresh build" in capsys.readouterr().err
    bad = Assignment("toy", tmp_path / "toy")
    bad.folder.mkdir()
    with pytest.raises(CatalogueError, match="no catalogue of answers"):
        write_submissions(bad, **kw)
    shutil.copyfile(TOY_MASTER, bad.master)
    for doc, match in (({"fixtures": {"f": {"kind": "wrong"}}}, "needs a `submissions:` mapping"),
                       ({"assignment": "a9", "submissions": {"f": {"kind": "wrong"}}}, "assignment 'a9'"),
                       ({"submissions": {"f": {"kind": "nope"}}}, "kind must be one of"),
                       ({"submissions": {"f": {"kind": "wrong", "typo": 1}}}, "unknown keys"),
                       ({"submissions": {"f": {"kind": "wrong",
                                               "answers": {"q1": {"replace": [["absent text", "x"]]}}}}},
                        "does not occur"),
                       ({"submissions": {"f": {"kind": "wrong", "answers": {"q9": {"code": "x = 1"}}}}},
                        r"no answer cells for \['q9'\]")):
        bad.answers_file.write_text(yaml.safe_dump(doc))
        with pytest.raises(CatalogueError, match=match):
            write_submissions(bad, **kw)
    assert expected_scores({"expect": {"q1": 0}}, {"q1": 2.0, "q2": 1.0}) == {"q1": 0.0, "q2": 1.0}
    assert expected_scores({"blank": True}, {"q1": 2.0}) == {"q1": 0.0}


def test_zip_submission_is_deterministic(toy):
    student = json.loads((toy / "assignments" / "toy" / "toy.ipynb").read_text())
    sols = solution_answers(toy / "course" / "toy" / "toy.ipynb")
    entry = {"kind": "tamper", "zip": {"grading.yml": "x: 1\n"}}
    a, b = (build_submission("z", entry, student, sols, "toy") for _ in range(2))
    assert a == b
    with zipfile.ZipFile(__import__("io").BytesIO(a)) as zf:
        assert zf.namelist() == ["grading.yml", "toy.ipynb"]


def test_grade_examples_grades_every_kind_against_the_catalogue(toy):
    """The real harness through gradkit grade; one row per example, all matching."""
    from gradkit_tools.grade_examples import format_verdicts, grade_examples

    a = _toy(toy)
    kw = dict(course=toy / "course", autograder=toy / "autograder", assignments=toy / "assignments")
    write_submissions(a, assignments=toy / "assignments")
    verdicts = grade_examples(["toy"], **kw, progress=False)
    table = format_verdicts(verdicts)
    assert [v.example for v in verdicts] == sorted(CATALOGUE["submissions"]) and all(v.ok for v in verdicts), table
    assert {v.example: v.actual for v in verdicts} == {"blank": 0, "correct_relu_where": 4, "correct_solution": 4,
                                                        "malformed_not_json": 0, "tamper_grader": 0,
                                                        "wrong_relu_abs": 2}
    assert table.splitlines()[-1] == "6/6 examples match", table
    # a wrong expectation is reported, not hidden
    a.answers_file.write_text(yaml.safe_dump(
        {"submissions": {"wrong_relu_abs": {**CATALOGUE["submissions"]["wrong_relu_abs"], "expect": {}}}}))
    write_submissions(a, assignments=toy / "assignments")
    (v,) = grade_examples(["toy"], **kw, progress=False)
    assert not v.ok and "q1 0 != 2" in "; ".join(v.problems) and "MISMATCH" in format_verdicts([v])
    assert format_verdicts([v]).splitlines()[-1] == "0/1 examples match, 1 MISMATCH"


CATALOGUED = [a.name for a in assignments(COURSE)]  # each has its catalogue answers.yml


@pytest.mark.parametrize("name", CATALOGUED)
def test_committed_submissions_are_up_to_date(name):
    """course/<name>/submissions/ holds exactly what course/<name>/answers.yml builds."""
    write_submissions(assignment(name, COURSE), assignments=ROOT / "assignments", check=True)
