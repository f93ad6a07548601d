"""gradkit.fixtures / gradkit.validate: fixture notebooks built from a manifest, graded with
known scores. Built on the toy assignment (q1 relu 2 pts, q2 mean_square 1 pt, q3 total 1 pt)."""
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from _toy import copy_tree
from gradkit.fixtures import (FixtureError, answer_cells, build_fixture, expected_scores, load_fixtures,
                              solution_answers, write_fixtures)

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"

MANIFEST = {
    "assignment": "toy",
    "fixtures": {
        "correct_solution": {"kind": "correct"},
        "correct_relu_where": {"kind": "correct", "answers": {"q1": {"code": "def relu(x):\n    return np.where(np.asarray(x) > 0, x, 0.0)"}}},
        "wrong_relu_abs": {"kind": "wrong", "answers": {"q1": {"replace": [["np.maximum(np.asarray(x, dtype=float), 0.0)", "np.abs(x)"]]}},
                           "expect": {"q1": 0}},
        "blank": {"kind": "blank", "blank": True},
        "malformed_not_json": {"kind": "malformed", "raw": "not a notebook {", "status": "ungradable",
                               "reason": "not a valid notebook"},
        "tamper_grader": {"kind": "tamper", "blank": True, "extra_cells": ["grader = None"],
                          "flags": "rebinds grader"},
    },
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = copy_tree(tmp_path_factory.mktemp("toy"))
    folder = root / "tests" / "fixtures" / "submissions" / "toy"
    folder.mkdir(parents=True)
    (folder / "manifest.yml").write_text(yaml.safe_dump(MANIFEST))
    return root


def _build(root, name):
    student = json.loads((root / "assignments" / "toy" / "toy.ipynb").read_text())
    sols = solution_answers(root / "solutions" / "toy" / "toy.ipynb")
    entry = load_fixtures(root / "tests" / "fixtures" / "submissions" / "toy")[name]
    return student, json.loads(build_fixture(name, entry, student, sols, "toy"))


def test_answers_land_in_their_questions_cells(toy):
    student, nb = _build(toy, "wrong_relu_abs")
    cells = answer_cells(student, solution_answers(toy / "solutions" / "toy" / "toy.ipynb"))
    assert sorted(cells) == ["q1", "q2", "q3"]
    src = lambda nb_, q: "".join(nb_["cells"][cells[q][0]]["source"])  # noqa: E731
    assert "np.abs(x)" in src(nb, "q1") and "BEGIN SOLUTION" not in src(nb, "q1")
    assert "np.mean" in src(nb, "q2")  # other questions: the solution
    _, blank = _build(toy, "tamper_grader")
    assert src(blank, "q1") == src(student, "q1") and blank["cells"][-1]["source"] == "grader = None"


def test_write_check_and_errors(toy, tmp_path):
    kw = dict(fixtures=toy / "tests" / "fixtures" / "submissions", assignments=toy / "assignments",
              solutions=toy / "solutions")
    paths = write_fixtures("toy", **kw)
    assert len(paths) == 6 and all(p.is_file() for p in paths)
    write_fixtures("toy", check=True, **kw)  # byte-identical rebuild
    paths[0].write_text(paths[0].read_text() + " ")
    with pytest.raises(FixtureError, match="differs from a fresh build"):
        write_fixtures("toy", check=True, **kw)
    bad = tmp_path / "toy"
    bad.mkdir()
    for entry, match in (({"kind": "nope"}, "kind must be one of"),
                         ({"kind": "wrong", "typo": 1}, "unknown keys"),
                         ({"kind": "wrong", "answers": {"q1": {"replace": [["absent text", "x"]]}}}, "does not occur"),
                         ({"kind": "wrong", "answers": {"q9": {"code": "x = 1"}}}, r"no answer cells for \['q9'\]")):
        (bad / "manifest.yml").write_text(yaml.safe_dump({"fixtures": {"f": entry}}))
        with pytest.raises(FixtureError, match=match):
            write_fixtures("toy", **{**kw, "fixtures": tmp_path})
    assert expected_scores({"expect": {"q1": 0}}, {"q1": 2.0, "q2": 1.0}) == {"q1": 0.0, "q2": 1.0}
    assert expected_scores({"blank": True}, {"q1": 2.0}) == {"q1": 0.0}


def test_zip_fixture_is_deterministic(toy):
    student = json.loads((toy / "assignments" / "toy" / "toy.ipynb").read_text())
    sols = solution_answers(toy / "solutions" / "toy" / "toy.ipynb")
    entry = {"kind": "tamper", "zip": {"grading.yml": "x: 1\n"}}
    a, b = (build_fixture("z", entry, student, sols, "toy") for _ in range(2))
    assert a == b
    with zipfile.ZipFile(__import__("io").BytesIO(a)) as zf:
        assert zf.namelist() == ["grading.yml", "toy.ipynb"]


def test_validate_grades_every_kind_against_the_manifest(toy):
    """The real otter run through gradkit grade; one row per fixture, all matching."""
    from gradkit.validate import format_verdicts, validate

    kw = dict(fixtures=toy / "tests" / "fixtures" / "submissions", assignments=toy / "assignments",
              solutions=toy / "solutions")
    write_fixtures("toy", **kw)
    verdicts = validate(["toy"], **kw, autograder=toy / "autograder",
                        config=ROOT / "tests" / "fixtures" / "toy" / "grading.yml", progress=False)
    table = format_verdicts(verdicts)
    assert [v.fixture for v in verdicts] == sorted(MANIFEST["fixtures"]) and all(v.ok for v in verdicts), table
    assert {v.fixture: v.actual for v in verdicts} == {"blank": 0, "correct_relu_where": 4, "correct_solution": 4,
                                                        "malformed_not_json": 0, "tamper_grader": 0,
                                                        "wrong_relu_abs": 2}
    # a wrong expectation is reported, not hidden
    (kw["fixtures"] / "toy" / "manifest.yml").write_text(yaml.safe_dump(
        {"fixtures": {"wrong_relu_abs": {**MANIFEST["fixtures"]["wrong_relu_abs"], "expect": {}}}}))
    write_fixtures("toy", **kw)
    (v,) = validate(["toy"], **kw, autograder=toy / "autograder",
                    config=ROOT / "tests" / "fixtures" / "toy" / "grading.yml", progress=False)
    assert not v.ok and "q1 0 != 2" in "; ".join(v.problems) and "MISMATCH" in format_verdicts([v])


@pytest.mark.parametrize("name", sorted(p.name for p in SUBMISSIONS.iterdir() if p.is_dir()) if SUBMISSIONS.is_dir() else [])
def test_committed_fixtures_are_up_to_date(name):
    """tests/fixtures/submissions/<name>/*.ipynb are exactly what their manifests build."""
    write_fixtures(name, fixtures=SUBMISSIONS, assignments=ROOT / "assignments", solutions=ROOT / "solutions",
                   check=True)
