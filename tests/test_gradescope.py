"""The autograder zip graded as Gradescope runs it: unzipped into a folder standing in for /autograder.

Gradescope unzips the autograder into ``/autograder/source``, puts the submission into
``/autograder/submission``, runs ``run_autograder`` (which runs ``source/run_gradkit.py`` after
activating otter's environment) and reads ``/autograder/results/results.json``. Here the
interpreter running the tests stands in for that environment.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from _toy import SUBMISSIONS, released_toy

#: Gradescope's results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/): top-level
#: keys and their types, and the keys a test may have
TOP_LEVEL = {"score": (int, float), "execution_time": (int, float), "output": str, "output_format": str,
             "test_output_format": str, "test_name_format": str, "visibility": str, "stdout_visibility": str,
             "extra_data": dict, "tests": list, "leaderboard": list}
TEST_KEYS = {"score": (int, float), "max_score": (int, float), "status": str, "name": str, "name_format": str,
             "number": str, "output": str, "output_format": str, "tags": list, "visibility": str,
             "extra_data": dict}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def check_schema(results: dict) -> None:
    """Fail unless ``results`` follows Gradescope's documented results.json format."""
    assert set(results) <= set(TOP_LEVEL), set(results) - set(TOP_LEVEL)
    for key, value in results.items():
        assert isinstance(value, TOP_LEVEL[key]), (key, value)
    assert "score" in results or all("score" in t for t in results["tests"])
    for test in results["tests"]:
        assert set(test) <= set(TEST_KEYS), set(test) - set(TEST_KEYS)
        for key, value in test.items():
            assert isinstance(value, TEST_KEYS[key]), (key, value)
        assert test.get("visibility", "visible") in VISIBILITY
    assert results.get("stdout_visibility", "visible") in VISIBILITY


def _run(tmp_path: Path, submission: Path) -> tuple[subprocess.CompletedProcess, dict]:
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(released_toy() / "autograder" / "toy" / "autograder.zip") as zf:
        zf.extractall(root / "source")
    (root / "submission").mkdir()
    shutil.copy(submission, root / "submission" / "notebook.ipynb")
    script = (root / "source" / "run_autograder").read_text()
    assert "python /autograder/source/run_gradkit.py" in script  # what Gradescope runs, after otter's env
    proc = subprocess.run([sys.executable, str(root / "source" / "run_gradkit.py")], cwd=root, capture_output=True,
                          text=True, timeout=300)
    return proc, json.loads((root / "results" / "results.json").read_text())


def test_run_autograder_grades_like_gradkit_grade(tmp_path):
    proc, results = _run(tmp_path, SUBMISSIONS / "toy.ipynb")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    check_schema(results)
    scores = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if "max_score" in t}
    assert scores == {"q1": (2.0, 2.0), "q2": (1.0, 1.0), "q3": (1.0, 1.0)}
    assert "Total Score: 4.000 / 4.000" in proc.stdout
    assert not (tmp_path / "autograder" / "kernel" / "tests").exists()  # the kernel's folder holds no tests


def test_run_autograder_reports_an_unreadable_submission(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("this is not a notebook")
    proc, results = _run(tmp_path, bad)
    assert proc.returncode == 1
    check_schema(results)
    assert results["score"] == 0 and results["tests"][0]["name"] == "Autograder Error"
    assert "could not be graded" in results["tests"][0]["output"]


@pytest.mark.parametrize("broken", [{"tests": [{"score": "1"}]}, {"tests": [], "verdict": 1},
                                    {"tests": [{"score": 1, "visibility": "sometimes"}]}])
def test_schema_check_can_fail(broken):
    with pytest.raises(AssertionError):
        check_schema(broken)
