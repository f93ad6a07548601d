"""The main job (``gradkit main``) on the toy assignment: release, grade the examples, print the table."""
import json

from _toy import copy_tree
from gradkit_tools.main import format_table, run_main


def test_main_job_grades_solution_blank_and_extra_examples(tmp_path, capsys):
    root = copy_tree(tmp_path / "tree")
    (root / "examples" / "toy").mkdir(parents=True)
    broken = root / "examples" / "toy" / "not_a_notebook.ipynb"
    broken.write_text("{ this is not json")
    tables = run_main(root / "course", root / "assignments", root / "autograder", root / "examples",
                      root / "out", jobs=2, release_first=False, progress=False)
    rows = {r["file"]: r for r in tables["toy"]}
    assert set(rows) == {"solution.ipynb", "blank.ipynb", "not_a_notebook.ipynb"}
    assert rows["solution.ipynb"]["percent_correct"] == 1.0
    assert rows["blank.ipynb"]["total_points_earned"] == 0 and rows["blank.ipynb"]["grading_status"] == "graded"
    assert rows["not_a_notebook.ipynb"]["grading_status"] == "ungradable"
    printed = capsys.readouterr().out
    assert "== toy" in printed and "solution.ipynb" in printed and "ungradable" in printed
    assert (root / "out" / "toy" / "final_grades.csv").is_file()
    assert "<section id=\"review\">" in (root / "out" / "toy" / "report.html").read_text()
    assert "class report:" in printed
    summary = json.loads((root / "out" / "toy" / "summary.json").read_text())
    assert summary["submissions"] == 3


def test_format_table_aligns_columns():
    rows = [{"file": "a.ipynb", "scores": {"q1": 2.0, "q2": 0.0}, "total_points_earned": 2.0,
             "percent_correct": 0.5, "grading_status": "graded", "reason": ""}]
    text = format_table("hw", rows).splitlines()
    assert text[0] == "== hw" and text[1].split() == ["submission", "q1", "q2", "total", "%", "status", "reason"]
    assert text[3].split() == ["a.ipynb", "2", "0", "2", "50", "graded"]
