"""gradkit grade / merge on the toy autograder and the fixture submissions in tests/fixtures/toy_submissions."""
from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import psutil
import pytest

from _toy import SUBMISSIONS, TOY_COURSE, released_toy
from gradkit_tools.cli import main
from gradkit_tools.grade import GradeError, grade, merge, parse_shard
from gradkit_tools.gradejob import Ungradable, prepare
from gradkit_tools.reproducible import read_zip, write_zip
from gradkit_tools.tamper import scan_submission

TIMEOUT_S = 30  # the infinite loop's budget; a toy notebook grades in ~4 s (~15 s on a loaded 2-core box)
MAIN_SET = ["Copy of toy.ipynb", "blank.ipynb", "infinite_loop.ipynb", "not_json.ipynb", "syntax_error.ipynb",
            "system_exit.ipynb", "toy (1).ipynb", "toy.ipynb"]
HEADER = ["file", "q1", "q2", "q3", "total_points_earned", "percent_correct", "grading_status", "reason",
          "flags", "device"]


def _rows(csv_path: Path) -> dict[str, dict]:
    with open(csv_path, newline="") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def autograder() -> Path:
    return released_toy() / "autograder" / "toy" / "autograder.zip"


@pytest.fixture(scope="module")
def graded(autograder, tmp_path_factory, children_before) -> Path:
    """The main fixture folder graded once through the CLI, 2 jobs, small timeout."""
    out = tmp_path_factory.mktemp("graded")
    code = main(["grade", str(autograder), str(SUBMISSIONS), "-o", str(out), "--jobs", "2",
                 "--timeout", str(TIMEOUT_S), "--memory-mb", "4096", "--course", str(TOY_COURSE), "--quiet"])
    assert code == 0
    return out


def test_every_submission_gets_a_row(graded):
    with open(graded / "final_grades.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == HEADER
    assert table[1][:7] == ["points-per-question", "2.0", "1.0", "1.0", "4.0", "1.0", "--"]
    assert [r[0] for r in table[2:]] == MAIN_SET
    assert sorted(p.name for p in (graded / "results").glob("*.json")) == sorted(
        Path(n).stem + ".json" for n in MAIN_SET)
    summary = json.loads((graded / "summary.json").read_text())
    assert summary["submissions"] == 8 and summary["ungradable"] == 2


def test_correct_blank_syntax_error_and_infinite_loop(graded):
    rows = _rows(graded / "final_grades.csv")
    ok, blank = rows["toy.ipynb"], rows["blank.ipynb"]
    syntax, loop = rows["syntax_error.ipynb"], rows["infinite_loop.ipynb"]
    assert (ok["total_points_earned"], ok["percent_correct"], ok["grading_status"], ok["reason"]) == (
        "4.0", "1.0", "graded", "")
    assert (blank["total_points_earned"], blank["grading_status"], blank["reason"]) == ("0.0", "graded", "")
    assert (syntax["total_points_earned"], syntax["grading_status"]) == ("0.0", "graded")
    assert "syntax error in cell 5 line 1: SyntaxError: expected ':'" in syntax["reason"]
    assert (loop["total_points_earned"], loop["q1"], loop["grading_status"]) == ("0.0", "0.0", "ungradable")
    assert loop["reason"] == f"timeout after {TIMEOUT_S} s"


def test_not_json_is_ungradable_and_system_exit_costs_only_its_question(graded):
    rows = _rows(graded / "final_grades.csv")
    assert rows["not_json.ipynb"]["grading_status"] == "ungradable"
    assert rows["not_json.ipynb"]["reason"] == "not a valid notebook: not JSON (Expecting value at line 1 column 1)"
    # mean_square (q2) calls sys.exit: its kernel answers the harness with the exception, q2 fails, the rest counts
    exits = rows["system_exit.ipynb"]
    assert (exits["grading_status"], exits["q1"], exits["q2"], exits["q3"]) == ("graded", "2.0", "0.0", "1.0")
    assert exits["reason"] == "q2: mean_square raised SystemExit"


def test_grade_does_not_depend_on_file_name(graded):
    rows = _rows(graded / "final_grades.csv")
    scores = {n: [rows[n][c] for c in HEADER[1:7]] for n in ("toy.ipynb", "toy (1).ipynb", "Copy of toy.ipynb")}
    assert scores["toy.ipynb"] == scores["toy (1).ipynb"] == scores["Copy of toy.ipynb"]
    assert scores["toy.ipynb"][3] == "4.0"


def test_results_json_and_device_recorded(graded):
    res = json.loads((graded / "results" / "Copy of toy.json").read_text())
    assert {t["name"]: t.get("score") for t in res["tests"] if "max_score" in t} == {"q1": 2.0, "q2": 1.0, "q3": 1.0}
    rec = res["gradkit"]
    assert rec["file"] == "Copy of toy.ipynb" and rec["grading_status"] == "graded"
    assert rec["device"].split(":")[0] in ("tensorflow", "jax", "torch")  # the backend Keras reported
    rows = _rows(graded / "final_grades.csv").values()
    assert {r["device"] for r in rows if r["file"] != "points-per-question"} == {rec["device"]}


def test_no_kernel_left_behind(graded, children_before):
    """Grading leaves no process of its own behind: no kernel, no sandbox, no worker."""
    assert set(psutil.Process().children(recursive=True)) - children_before == set()


def test_rerun_skips_graded_submissions_unless_forced(graded, autograder, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(graded, out)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    rows = grade(autograder, SUBMISSIONS, out, timeout_s=1, memory_mb=0, course=TOY_COURSE, progress=False)
    assert len(rows) == 8  # a 1 s timeout would make every regraded notebook a timeout: none was regraded
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()} == before
    assert _rows(out / "final_grades.csv") == _rows(graded / "final_grades.csv")
    grade(autograder, [SUBMISSIONS / "not_json.ipynb"], out, force=True, timeout_s=1, memory_mb=0,
          course=TOY_COURSE, progress=False)
    assert (out / "results" / "not_json.json").stat().st_mtime_ns != before["not_json.json"]


def test_shards_partition_and_merge_back(graded, autograder, tmp_path, capsys):
    shard_csvs, seen = [], []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}"
        shutil.copytree(graded / "results", out / "results")  # already graded: shards reuse the results
        rows = grade(autograder, SUBMISSIONS, out, shard=f"{k}/3", timeout_s=1, memory_mb=0,
                     course=TOY_COURSE, progress=False)
        seen += [r["file"] for r in rows]
        shard_csvs.append(str(out / "final_grades.csv"))
    assert seen == MAIN_SET  # disjoint, stable by file name, nothing lost
    merged = tmp_path / "final_grades.csv"
    assert main(["merge", *shard_csvs, "-o", str(merged)]) == 0
    assert merged.read_text() == (graded / "final_grades.csv").read_text()


def test_merge_rejects_csvs_of_different_autograders(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("file,q1,total_points_earned\nx.ipynb,1.0,1.0\n")
    b.write_text("file,q2,total_points_earned\ny.ipynb,1.0,1.0\n")
    with pytest.raises(GradeError, match="b.csv has columns"):
        merge([a, b], tmp_path / "m.csv")


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None
    for bad in ("0/2", "3/2", "x", "1-2"):
        with pytest.raises(GradeError):
            parse_shard(bad)


def test_refuses_more_parallel_slots_than_a_grading_has_uids(autograder, tmp_path):
    with pytest.raises(GradeError, match="--jobs 257: one grading runs at most 256 submissions at once"):
        grade(autograder, SUBMISSIONS / "toy.ipynb", tmp_path / "out", jobs=257, course=TOY_COURSE, progress=False)
    assert not (tmp_path / "out").exists()


def test_refuses_an_autograder_that_does_not_match_its_manifest(autograder, tmp_path):
    bad = tmp_path / "autograder.zip"
    entries = read_zip(autograder)
    entries["tests/q1.py"] = entries["tests/q1.py"].replace(b"points=1", b"points=100")
    write_zip(entries, bad)
    shutil.copy(autograder.parent / "manifest.json", tmp_path / "manifest.json")
    with pytest.raises(GradeError, match=r"does not match .*manifest.json \(entries differing: tests/q1.py\)"):
        grade(bad, SUBMISSIONS / "toy.ipynb", tmp_path / "out", course=TOY_COURSE)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(GradeError, match="manifest.json not found"):
        grade(bad, SUBMISSIONS / "toy.ipynb", tmp_path / "out", course=TOY_COURSE)


def test_tamper_scan_flags(tmp_path):
    nb = json.loads((SUBMISSIONS / "more" / "tamper.ipynb").read_text())
    syntax, flags = scan_submission(nb)
    text = "\n".join(map(str, flags))
    assert syntax == []
    for expected in ("monkeypatches np.allclose", "touches tests/ ('tests')", "touches sys.modules",
                     "monkeypatches np via setattr", "rebinds grader"):
        assert expected in text, (expected, text)
    clean = json.loads((SUBMISSIONS / "toy.ipynb").read_text())
    assert scan_submission(clean) == ([], [])  # otter's own `grader = otter.Notebook(...)` is not a flag
    grader = {"cells": [{"cell_type": "code", "source": "from gradkit_grader.course.a3_dying_relu import reference\n"
                                                        "import gradkit_tools.release as r\nimport gradkit.data\n"}]}
    assert [str(f) for f in scan_submission(grader)[1]] == [
        "cell 1 line 1: imports the grader (gradkit_grader.course.a3_dying_relu)",
        "cell 1 line 2: imports the grader (gradkit_tools.release)"]


def test_zip_submission_grades_only_its_notebook(tmp_path):
    prepared = prepare(SUBMISSIONS / "more" / "exported.zip", "toy", tmp_path)
    assert prepared.notebook == tmp_path / "toy.ipynb"
    assert sorted(prepared.flags) == ["zip carries gradkit/__init__.py (ignored)", "zip carries tests/q1.py (ignored)"]
    assert json.loads(prepared.notebook.read_text())["metadata"]["kernelspec"]["name"] == "python3"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme.txt", "no notebook here")
    with pytest.raises(Ungradable, match="zip holds no notebook"):
        prepare(bad, "toy", tmp_path / "x")


@pytest.mark.slow
def test_out_of_memory_kernel_death_tamper_and_zip_end_to_end(autograder, tmp_path):
    rows = {r["file"]: r for r in grade(autograder, SUBMISSIONS / "more", tmp_path, jobs=2, timeout_s=120,
                                        memory_mb=4096, course=TOY_COURSE, progress=False)}
    assert rows["oom.ipynb"]["grading_status"] == "ungradable"
    assert rows["oom.ipynb"]["reason"].startswith("out of memory (MemoryError in cell 10 under the 4096 MB limit")
    death = rows["kernel_death.ipynb"]
    assert (death["grading_status"], death["reason"]) == ("ungradable", "kernel died")
    assert (rows["tamper.ipynb"]["grading_status"], rows["tamper.ipynb"]["total_points_earned"]) == ("graded", 4.0)
    assert any("monkeypatches np.allclose" in f for f in rows["tamper.ipynb"]["flags"])
    assert (rows["exported.zip"]["grading_status"], rows["exported.zip"]["total_points_earned"]) == ("graded", 4.0)
    assert "zip carries gradkit/__init__.py (ignored)" in rows["exported.zip"]["flags"]


def test_tamper_scan_flags_deferred_code_and_module_rebinding():
    """Code that runs after its cell (atexit, threads, signal handlers) could forge otter's results
    file; rebinding an imported module's name fools tests that read the student's globals."""
    src = ("import atexit, glob, threading\nimport numpy as np\natexit.register(print)\n"
           "found = glob.glob('/tmp/*.pkl')\nthreading.Thread(target=print).start()\nnp = None\n")
    _, flags = scan_submission({"cells": [{"cell_type": "code", "source": src}]})
    text = "\n".join(map(str, flags))
    for expected in ("line 3: registers exit code (atexit)", "line 4: touches grading results",
                     "line 5: starts a thread", "line 6: rebinds the module name np"):
        assert expected in text, (expected, text)
