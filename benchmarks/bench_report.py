"""``gradkit report`` for a class of 300: time to build the page, and its similarity step against a naive one.

    .venv/bin/python benchmarks/bench_report.py [--students 300] [--quick] [--json PATH]

The class is synthetic but shaped like a graded a1_clipping batch: ``--students`` notebooks made from
the released student notebook (each answer cell filled with one of several right or wrong forms, plus
scratch work of its own), and for each a results file as ``gradkit grade`` writes it (otter's per-case
output, band messages with values, the ``gradkit`` record). Timed in this one run:

* gradkit: :func:`gradkit_tools.report.build_report` end to end (read, summarise, similarity, figures,
  HTML), and its similarity step alone (each submission fingerprinted once, then every pair compared);
* naive baseline: the similarity step as a script calling copydetect per pair would do it (both files
  fingerprinted again for every pair), timed on a sample of pairs and extrapolated to all pairs.

Nothing asserts.
"""
from __future__ import annotations

import io
import json
import random
import shutil
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import part_main, part_parser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "a1_clipping"
FORMS = ["    total = ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))\n",
         "    flat = ops.concatenate([ops.reshape(g, (-1,)) for g in grads], axis=0)\n    total = ops.norm(flat)\n",
         "    total = 0.0\n    for g in grads:\n        total = total + ops.sum(g * g)\n    total = ops.sqrt(total)\n"]
SCRATCH = ["for i in range({a}):\n    print(i * {b})\n", "vals = [j ** 2 for j in range({a}) if j % {b}]\n",
           "def helper_{a}(v):\n    return v - {b} if v > {b} else -v\n", "print(np.linspace(-{a}, {b}, 5).std())\n",
           "d = {{k: str(k) * {b} for k in range({a})}}\n",
           "try:\n    print(1 / ({a} - {b}))\nexcept ZeroDivisionError:\n    pass\n",
           "m = np.eye({a})[:{b}]\nprint(m.sum())\n", "s = 'x' * {a}\nprint(s.split('x', {b})[:2])\n"]
BAND = ("AssertionError: log10 of the worst final MSE = {v:.3g}: part {k}/4 of this test's credit needs at most "
        "1.398 (full credit at 1.39794, none at 4.92077, linear in between; this value earns {e}/4). "
        "[hidden-test seed {s}, derived from your code; a regrade of the same code uses it again]")


def make_class(root: Path, students: int, rng: random.Random) -> Path:
    """``root/out`` as `gradkit grade` leaves it for ``students`` synthetic submissions."""
    student = json.loads((ROOT / "assignments" / NAME / f"{NAME}.ipynb").read_text())
    out, subs = root / "out", root / "subs"
    (out / "results").mkdir(parents=True)
    subs.mkdir()
    for i in range(students):
        nb = json.loads(json.dumps(student))
        scratch = "".join(rng.choice(SCRATCH).format(a=rng.randint(3, 9), b=rng.randint(2, 7)) for _ in range(5))
        nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                            "source": "def my_norm(grads):\n" + rng.choice(FORMS) + "    return total\n" + scratch})
        path = subs / f"s{i:03d}.ipynb"
        path.write_text(json.dumps(nb))
        value = rng.uniform(0.5, 5.5)
        earned = max(0, min(4, int((4.92077 - value) / (4.92077 - 1.39794) * 4)))
        q1_fail = rng.random() < 0.2
        q1 = ("q1 results:\n" + "".join(
            f"    q1 - {k} result:\n        {'❌ Test case failed' if q1_fail and k == 6 else '✅ Test case passed'}\n"
            + ("        AssertionError: limit 0.5: entry -2.354 must become -0.5, got -2.354\n" if q1_fail and k == 6
               else "") + "\n" for k in range(1, 8)))
        failed = "❌ Test case failed\n        {}\n\n"
        q2 = "q2 results:\n" + "".join(
            f"    q2 - {k} result:\n        " + ("✅ Test case passed\n\n" if k < 3 + earned
                                               else failed.format(BAND.format(v=value, k=k - 2, e=earned, s=i)))
            for k in range(1, 7))
        scores = {"q1": 4.0 if q1_fail else 5.0, "q2": 1 + earned / 4}
        rec = {"file": path.name, "key": path.stem, "assignment": NAME, "grading_status": "graded", "reason": "",
               "flags": ["cell 3 line 1: monkeypatches np.allclose"] if i % 50 == 7 else [], "scores": scores,
               "total_points_earned": sum(scores.values()), "percent_correct": sum(scores.values()) / 7,
               "device": "tensorflow: CPU", "seconds": rng.uniform(14, 22), "peak_rss_mb": rng.uniform(900, 1400),
               "source": str(path)}
        tests = [{"name": "q1", "score": scores["q1"], "max_score": 5, "output": q1},
                 {"name": "q2", "score": scores["q2"], "max_score": 2, "output": q2}]
        (out / "results" / f"{path.stem}.json").write_text(json.dumps({"tests": tests, "gradkit": rec}))
    (out / "summary.json").write_text(json.dumps({"assignment": NAME, "device": "tensorflow: CPU",
                                                  "autograder": str(ROOT / "autograder" / NAME / "autograder.zip")}))
    return out


def naive_pair_seconds(codes: dict[str, str], template: str, sample: int, rng: random.Random) -> float:
    """Seconds per pair when both sides are fingerprinted again for every pair (a per-pair script)."""
    from copydetect import CodeFingerprint, compare_files

    from gradkit_tools.similarity import WINDOW, K

    names = sorted(codes)
    pairs = rng.sample(list(combinations(names, 2)), sample)
    t0 = time.perf_counter()
    for a, b in pairs:
        boiler = list(CodeFingerprint("t.py", K, WINDOW, language="python", fp=io.StringIO(template)).hashes)
        fa = CodeFingerprint(f"{a}.py", K, WINDOW, boilerplate=boiler, language="python", fp=io.StringIO(codes[a]))
        fb = CodeFingerprint(f"{b}.py", K, WINDOW, boilerplate=boiler, language="python", fp=io.StringIO(codes[b]))
        compare_files(fa, fb)
    return (time.perf_counter() - t0) / sample


def run(args) -> dict:
    from gradkit_tools.report import build_report
    from gradkit_tools.similarity import notebook_code, similar_pairs

    students = args.students or (40 if args.quick else 300)
    rng = random.Random(20261202)
    work = Path(tempfile.mkdtemp(prefix="gradkit-bench-report-"))
    try:
        out = make_class(work, students, rng)
        t0 = time.perf_counter()
        summary = build_report([out], out / "report.html", json_out=out / "report.json",
                               release=ROOT / "assignments")
        total = time.perf_counter() - t0
        size_kb = (out / "report.html").stat().st_size / 1024
        codes = {p.name: notebook_code(p) for p in sorted((work / "subs").iterdir())}
        template = notebook_code(ROOT / "assignments" / NAME / f"{NAME}.ipynb")
        t0 = time.perf_counter()
        similar_pairs(codes, template)
        ours = time.perf_counter() - t0
        n_pairs = students * (students - 1) // 2
        naive = naive_pair_seconds(codes, template, min(args.sample, n_pairs), rng) * n_pairs
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [["gradkit report, end to end", total, "-"],
            ["similarity: fingerprint once, compare pairs", ours, 1.0],
            [f"similarity: fingerprint per pair (timed {min(args.sample, n_pairs)} pairs, extrapolated)", naive,
             naive / ours]]
    return {"part": "report", "title": f"gradkit report for {students} submissions ({NAME}-shaped)",
            "columns": ["step", "seconds", "ratio to gradkit's similarity"], "rows": rows,
            "notes": [f"{n_pairs} pairs; page {size_kb:.0f} KB; {len(summary['similarity']['pairs'])} similar pairs, "
                      f"{len(summary['review']['flagged_or_ungradable'])} submissions in the review queue"],
            "targets": [{"what": "report for 300 submissions", "target": "seconds, measured",
                         "measured": f"{total:.1f} s for {students}", "met": None}],
            "extra": {"students": students, "report_s": total, "similarity_s": ours, "naive_s": naive}}


if __name__ == "__main__":
    ap = part_parser(__doc__)
    ap.add_argument("--students", type=int, default=None, help="class size (default 300; 40 with --quick)")
    ap.add_argument("--sample", type=int, default=200, help="pairs timed for the naive baseline")
    part_main(run, ap)
