"""``gradkit report`` on a synthetic class of 40 toy submissions graded with the real ``gradkit grade``.

The class: 29 distinct students (answers drawn from several right and wrong forms, each with scratch
work of its own), two near-copies of one of them (names changed, a comment added), a flagged one
(monkeypatches numpy), a blank one, six with a wrong relu, and a file that is not a notebook. The
page's numbers must equal those computed here from the CSV; the page is opened in headless
Chromium (Debian's package), which must render every section without console errors.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from _toy import SUBMISSIONS, TOY_COURSE, released_toy
from gradkit_tools.classdata import band_position, case_outcomes, load_class
from gradkit_tools.cli import main
from gradkit_tools.grade import grade

ROOT = Path(__file__).resolve().parents[1]
RELU = ["return np.maximum(x, 0.0)", "return np.where(x > 0, x, 0.0)", "return (x + np.abs(x)) / 2",
        "y = np.array(x, dtype=float)\n    y[y < 0] = 0.0\n    return y", "return np.clip(x, 0.0, None)"]
WRONG_RELU = "return np.abs(x)"
SQUARE = ["return float(np.mean(np.asarray(x, dtype=float) ** 2))",
          "a = np.asarray(x, dtype=float)\n    return float((a * a).sum() / a.size)",
          "return float(np.dot(np.ravel(x), np.ravel(x)) / np.size(x))"]
TOTAL = ["total = 55", "total = sum(range(1, 11))", "total = 10 * 11 // 2"]
SCRATCH = ["acc = 0\nfor i in range({a}):\n    acc += i * {b}\n", "vals = [j ** 2 for j in range({a}) if j % {b}]\n",
           "def helper_{a}(v):\n    if v > {b}:\n        return v - {b}\n    return -v\n",
           "grid = np.linspace(-{a}, {b}, {a} + {b})\nprint(grid.mean(), grid.std())\n",
           "d = {{k: str(k) * {b} for k in range({a})}}\nprint(len(d))\n",
           "while {a} > {b}:\n    break\nelse:\n    print('no loop', {a})\n",
           "try:\n    print(1 / ({a} - {b}))\nexcept ZeroDivisionError as exc:\n    print(exc)\n",
           "s = 'x' * {a}\nparts = s.split('x', {b})\nprint(parts[:2])\n",
           "m = np.eye({a})[:{b}]\nprint(m.shape, m.sum(axis=0)[:2])\n",
           "import math\nprint(math.factorial({b}) % {a}, math.gcd({a}, {b}))\n"]


def _student(i: int, rng: np.random.Generator, relu: str | None = None) -> dict:
    nb = json.loads((SUBMISSIONS / "blank.ipynb").read_text())
    codes = {4: "def relu(x):\n    " + (relu or RELU[i % len(RELU)]) + "\n",
             7: "def mean_square(x):\n    " + SQUARE[i % len(SQUARE)] + "\n", 9: TOTAL[i % len(TOTAL)] + "\n"}
    for idx, code in codes.items():
        nb["cells"][idx]["source"] = code
    order = rng.permutation(len(SCRATCH))[:6]
    scratch = "".join(SCRATCH[k].format(a=int(rng.integers(3, 9)), b=int(rng.integers(2, 7))) for k in order)
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": f"scratch-{i}", "metadata": {},
                        "outputs": [], "source": scratch})
    return nb


def _near_copy(nb: dict) -> dict:
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and isinstance(cell["source"], str):
            cell["source"] = re.sub(r"\bacc\b", "total_so_far", cell["source"]).replace("vals", "values")
    nb["cells"][-1]["source"] = "# my own work\n" + nb["cells"][-1]["source"]
    return nb


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    subs, out = base / "subs", base / "out"
    subs.mkdir()
    rng = np.random.default_rng(20261202)
    notebooks = {f"student_{i:02d}.ipynb": _student(i, rng) for i in range(29)}
    notebooks.update({f"wrong_{i}.ipynb": _student(100 + i, rng, relu=WRONG_RELU) for i in range(6)})
    notebooks["student_31.ipynb"] = _near_copy(notebooks["student_07.ipynb"])
    notebooks["student_32.ipynb"] = _near_copy(notebooks["student_07.ipynb"])
    flagged = _student(40, rng)
    flagged["cells"][-1]["source"] += "np.allclose = lambda *a, **k: True\n"
    notebooks["flagged.ipynb"] = flagged
    for name, nb in notebooks.items():
        (subs / name).write_text(json.dumps(nb, indent=1))
    shutil.copy(SUBMISSIONS / "blank.ipynb", subs / "blank.ipynb")
    (subs / "broken.ipynb").write_text("{ not json")
    autograder = released_toy() / "autograder" / "toy" / "autograder.zip"
    grade(autograder, subs, out, jobs=2, timeout_s=120, course=TOY_COURSE, progress=False)
    html, js = out / "report.html", out / "report.json"
    assert main(["report", str(out), "--json", str(js), "--assignments",
                 str(released_toy() / "assignments")]) == 0
    return {"out": out, "html": html, "summary": json.loads(js.read_text()), "subs": subs}


def _csv(out: Path) -> list[dict]:
    with open(out / "final_grades.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["file"] != "points-per-question"]


def test_numbers_equal_those_of_the_csv(graded_class):
    rows, s = _csv(graded_class["out"]), graded_class["summary"]
    assert (s["submissions"], s["graded"], s["ungradable"]) == (len(rows), 39, 1) == (40, 39, 1)
    graded = [r for r in rows if r["grading_status"] == "graded"]
    for q in ("q1", "q2", "q3", "total"):
        col = "total_points_earned" if q == "total" else q
        vals = np.array([float(r[col]) for r in graded])
        q1, med, q3 = np.percentile(vals, [25, 50, 75])
        got = s["scores"][q]
        assert (got["n"], got["mean"], got["median"], got["q1"], got["q3"]) == (
            len(vals), round(vals.mean(), 4), round(med, 4), round(q1, 4), round(q3, 4))
    wrong_relu = sum(r["q1"] == "0.0" for r in graded)
    top = s["cases"][0]
    assert top["question"] == "q1" and top["failed"] == wrong_relu == 7  # six |x| answers and the blank
    assert top["rate"] == round(7 / 39, 4) and top["messages"][0][1] <= 7


def test_review_queue_and_similarity(graded_class):
    s = graded_class["summary"]
    queue = {r["file"]: r for r in s["review"]["flagged_or_ungradable"]}
    assert set(queue) == {"flagged.ipynb", "broken.ipynb"}
    assert "monkeypatches np.allclose" in "; ".join(queue["flagged.ipynb"]["flags"])
    assert queue["broken.ipynb"]["status"] == "ungradable"
    pairs = {(p["a"], p["b"]) for p in s["similarity"]["pairs"]}
    assert {("student_07.ipynb", "student_31.ipynb"), ("student_07.ipynb", "student_32.ipynb"),
            ("student_31.ipynb", "student_32.ipynb")} <= pairs
    assert all(p[0].startswith("student_") and p[1].startswith("student_") for p in pairs)
    assert len(pairs) <= 3 + 2  # distinct students are not flagged (at most a chance pair or two)


def test_time_and_memory_per_submission(graded_class):
    per = {t["file"]: t for t in graded_class["summary"]["time_memory"]["per_submission"]}
    assert len(per) == 40
    graded = [t for f, t in per.items() if f != "broken.ipynb"]
    # a toy kernel (numpy, ipykernel) and otter's process hold 150-400 MB resident between them
    assert all(t["seconds"] > 0 and t["peak_rss_mb"] and 100 < t["peak_rss_mb"] < 4096 for t in graded)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (CI installs Debian's)")
def test_page_renders_in_headless_chromium(graded_class, tmp_path):
    from PIL import Image

    html = graded_class["html"]
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in ("scores", "cases", "bands", "review", "similarity", "time"):
        assert f'<section id="{section}">' in dom.stdout
    assert dom.stdout.count("<img ") >= 2 and "student_31.ipynb" in dom.stdout
    shot = tmp_path / "report.png"
    run = subprocess.run([*base, "--window-size=1280,2000", f"--screenshot={shot}", html.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    console = [ln for ln in (dom.stderr + run.stderr).splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == []
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 200).mean() > 0.02  # text and figures, not a blank page


def test_case_outcomes_and_band_positions_parse_otter_output():
    out = ("q2 results:\n    q2 - 1 result:\n        ✅ Test case passed\n\n    q2 - 2 result:\n"
           "        ❌ Test case failed\n        Error at line 9 in test q2:\n              assert_band_step(...)\n"
           "        AssertionError: mean = 0.62: part 2/4 of this test's credit needs at least 0.65 (full credit at"
           " 0.7, none at 0.6, linear in between; this value earns 0/4). [hidden-test seed 5, derived]")
    got = case_outcomes(out, ["test_a", "test_b_band_2"])
    assert got["test_a"] is None and got["test_b_band_2"].startswith("AssertionError: mean = 0.62: part 2/4")
    assert band_position(got["test_b_band_2"]) == pytest.approx(0.8)
    assert case_outcomes("q1 results: All test cases passed!", ["x", "y"]) == {"x": None, "y": None}


def test_bands_of_a_real_autograder(tmp_path):
    """a1's banded test: the class's band histogram and near-boundary queue from otter's messages."""
    from gradkit_tools.report import summarize

    out = tmp_path / "a1"
    (out / "results").mkdir(parents=True)
    zip_path = ROOT / "autograder" / "a1_clipping" / "autograder.zip"
    msg = ("AssertionError: log10 MSE = {v}: part {k}/4 of this test's credit needs at most 1.398 (full credit at "
           "1.39794, none at 4.92077, linear in between; this value earns 1/4).")
    for name, value, passed in (("near", 3.99, 1), ("far", 2.7, 2), ("full", None, 4)):
        # q2's cases: the public one, the configuration, then bands 1-4 (cases 3-6)
        cases = "".join(f"    q2 - {i} result:\n        ✅ Test case passed\n\n" for i in range(1, 3 + passed))
        cases += "".join(f"    q2 - {i} result:\n        ❌ Test case failed\n        "
                         f"{msg.format(v=value, k=i - 2)}\n\n" for i in range(3 + passed, 7))
        tests = [{"name": "q1", "score": 5, "max_score": 5, "output": "q1 results: All test cases passed!"},
                 {"name": "q2", "score": 1 + passed / 4, "max_score": 2, "output": "q2 results:\n" + cases}]
        rec = {"file": f"{name}.ipynb", "grading_status": "graded", "scores": {"q1": 5.0, "q2": 1 + passed / 4},
               "total_points_earned": 6 + passed / 4, "flags": [], "reason": "", "seconds": 1.0}
        (out / "results" / f"{name}.json").write_text(json.dumps({"tests": tests, "gradkit": rec}))
    (out / "summary.json").write_text(json.dumps({"assignment": "a1_clipping", "autograder": str(zip_path)}))
    s = summarize(load_class([out]), similarity=False)
    assert s["bands"] == {"test_optimizer_converges": [0, 1, 1, 0, 1]}
    assert [(n["file"], n["bands"]) for n in s["review"]["near_band_boundary"]] == [("near.ipynb", "1/4")]
