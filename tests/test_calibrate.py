"""gradkit_tools.calibrate on a statistic with a known distribution: the mean of 100 N(0, 1) draws
(exactly N(0, 0.01)), so margins, tail probabilities and power can be checked against theory."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradkit_grader.statistic import Check
from gradkit_tools.calibrate import format_reports, run_check, summarize

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
#: every assignment of the course with stochastic hidden tests (a statistics.py)
CALIBRATED = sorted(p.parent.name for p in COURSE.glob("*/statistics.py"))


def _mean_of_draws(components, tol, seed):
    rng = np.random.default_rng(seed)
    return float(np.mean(rng.normal(components["shift"], 1.0, size=100)))


def _check(full="mean_min"):
    return Check(name="toy mean", test="test_toy_mean", statistic=_mean_of_draws, full=full, zero=None,
                 reference=lambda tol: {"shift": 0.0})


#: the toy check's wrong answer (components, as a catalogue entry's namespace gives them)
WRONG = {"shifted": {"shift": -1.0}}


TOL = {"mean_min": -0.4, "mean_max": 0.4}


def test_margin_and_fitted_tail_match_theory():
    """Bound -0.45 = 4.5 sd below the reference mean 0: margin ~4.5, fitted P(fail) ~ Phi(-4.5) = 3.4e-6."""
    from scipy.stats import norm

    tol = {"mean_min": -0.45}
    values = run_check(_check(), tol, range(400))
    rep = summarize(_check(), "toy", tol, values, seconds=0.0)
    assert rep.runs == 400 and rep.false_fails == 0
    assert abs(rep.mean) < 4 * 0.1 / math.sqrt(400)  # 4 standard errors of the mean
    assert 0.1 * 0.85 < rep.sd < 0.1 * 1.15  # chi-square: 400 runs put sd within +-15% far beyond 1e-4
    assert 3.6 < rep.margin_sd < 5.6 and rep.tail_normal == pytest.approx(norm.sf(rep.margin_sd))
    # the skew-normal fit of normal data stays near the normal tail (sample skew only), within budget
    assert rep.tail_prob == max(rep.tail_normal, rep.tail_skewnorm) < 1e-4 and rep.meets_budget
    assert rep.upper95 == pytest.approx(1 - 0.05 ** (1 / 400), rel=1e-6)  # Clopper-Pearson for 0 of n


def test_skewed_statistic_is_judged_by_its_skewed_tail():
    """A sum of 4 squared normals (chi-square, 4 df, skew 1.41) with its bound 4 sd above the mean: a
    normal fit claims P(fail) = Phi(-4) = 3e-5, within budget, but the true tail is 4.1e-3; the
    skew-normal fit sees a tail above 1e-4, so the bound misses its budget."""
    from scipy.stats import chi2

    def squares(components, tol, seed):
        return float(np.sum(np.random.default_rng(seed).normal(size=4) ** 2))

    check = Check("toy chi-square", "test_toy_chi2", squares, "sum_max", None, lambda tol: {})
    tol = {"sum_max": 4 + 4 * math.sqrt(8)}
    rep = summarize(check, "toy", tol, run_check(check, tol, range(400)), seconds=0.0)
    assert rep.tail_normal < 1e-4 < rep.tail_skewnorm <= chi2.sf(tol["sum_max"], 4) * 3
    assert rep.tail_prob == rep.tail_skewnorm and not rep.meets_budget


def test_direction_power_and_failures_count():
    upper = _check("mean_max")
    rep = summarize(upper, "toy", TOL, run_check(upper, TOL, range(50)), seconds=0.0)
    assert not rep.larger_is_better and rep.margin_sd > 3
    from gradkit_tools.calreport import power_entry

    lower = _check()
    power = power_entry(lower, TOL, run_check(lower, TOL, range(50), components=WRONG["shifted"]))  # 6 sd below
    assert power["fails"] == 50 and power["fail_prob"] > 0.99

    def crashes(components, tol, seed):
        raise RuntimeError("student bug")

    broken = Check("crash", "test_crash", crashes, "mean_min", None, lambda tol: {})
    vals = run_check(broken, TOL, range(3))
    assert np.isnan(vals).all()
    rep = summarize(broken, "toy", TOL, vals, seconds=0.0)
    assert rep.false_fails == 3 and not rep.meets_budget
    assert "FAIL" in format_reports([rep]) and "3/3" in format_reports([rep])


def test_too_tight_bound_misses_the_budget():
    """A bound 2 sd from the mean passes 20 seeds often, but its fitted tail (2.3e-2) misses 1e-4."""
    tol = {"mean_min": -0.2}
    rep = summarize(_check(), "toy", tol, run_check(_check(), tol, range(300)), seconds=0.0)
    assert 1e-3 < rep.tail_prob < 0.1 and not rep.meets_budget
    assert len(rep.values) == 300 and rep.method == "empirical"  # the runs themselves are kept
    json.dumps(rep.values)  # serialisable for course/<name>/calibration.json


@pytest.mark.parametrize("name", CALIBRATED)
def test_every_stochastic_check_declares_a_budget(name):
    """course/<name>/tolerances.yml ``budgets:`` names every stochastic hidden test of
    gradkit_grader.course.<name>.statistics, each with a false-fail budget <= 1e-4 per evaluation and a
    method."""
    from gradkit_tools.calibrate import DEFAULT_BUDGET, budgets, checks_of

    declared = budgets(name, COURSE)
    assert set(declared) == {c.test for c in checks_of(name)}, "budgets must name exactly the stochastic tests"
    assert all(0 < e["budget"] <= DEFAULT_BUDGET for e in declared.values())


def test_spread_seeds_are_distinct_reproducible_and_not_consecutive():
    """Runs must not share trainings: a1 trains with seeds s, s + 1, s + 2, so consecutive run seeds would."""
    from gradkit_grader.seeding import SEED_LIMIT
    from gradkit_tools.calibrate import spread_seeds

    seeds = spread_seeds(300, 10_000)
    assert seeds == spread_seeds(300, 10_000) and seeds != spread_seeds(300, 10_001)
    assert len(set(seeds)) == 300 and all(0 <= s < SEED_LIMIT for s in seeds)
    gaps = np.diff(np.sort(seeds))
    # the largest offset a statistic adds to its seed is a4's 9 x seed_stride = 9000 (a1: + 2 fits,
    # + 100 loop runs), so no two runs of this seed list share a model seed
    assert gaps.min() > 9000


@pytest.mark.parametrize("name", CALIBRATED)
def test_committed_calibration_meets_every_budget(name):
    """course/<name>/calibration.json (written by `gradkit calibrate`): >= 300 runs per stochastic
    check at the bounds tolerances.yml has now, no false fail, empirical tails within budget, and power
    >= 0.99 against every ``power: true`` answer of the catalogue that fails the check."""
    from gradkit_tools.calibrate import calibration_problems

    assert calibration_problems(name, COURSE) == []


def test_calibration_problems_sees_a_changed_bound(tmp_path):
    """Tightening a bound after calibrating makes the committed calibration stale."""
    from gradkit_tools.calibrate import calibration_problems

    doc = json.loads((COURSE / "a4_resnet" / "calibration.json").read_text())
    key = next(k for k in doc["checks"] if k.startswith("test_resnet_trains"))
    doc["checks"][key]["bound"] += 0.01
    doc["checks"][key]["false_fails"] = 2
    doc["checks"][key]["power"] = {}
    (tmp_path / "a4_resnet.json").write_text(json.dumps(doc))
    problems = calibration_problems("a4_resnet", COURSE, tmp_path / "a4_resnet.json")
    assert any("re-run gradkit calibrate" in p for p in problems)
    assert any("2 of" in p for p in problems) and any("unmeasured" in p for p in problems)
    assert calibration_problems("a4_resnet", COURSE, tmp_path / "missing.json")[0].endswith(
        "run `gradkit calibrate a4_resnet`")


@pytest.mark.parametrize("name", CALIBRATED)
def test_committed_calibration_summaries_follow_from_its_runs(name, tmp_path):
    """`gradkit calibrate --refit` (summaries recomputed from the stored runs, no new runs) reproduces the
    committed file: its numbers come from its 300 runs and the current tail fits, not from an edit."""
    from gradkit_tools.calibrate import refit

    committed = COURSE / name / "calibration.json"
    refit(name, committed, out=tmp_path / "refit.json")
    old, new = json.loads(committed.read_text()), json.loads((tmp_path / "refit.json").read_text())
    _assert_same(old, new, name)


def _assert_same(old, new, where):
    """Equal JSON trees, floats to 1e-6 relative (the tail fits' optimizer), NaN equal to NaN."""
    if isinstance(old, dict):
        assert old.keys() == new.keys(), where
        for k in old:
            _assert_same(old[k], new[k], f"{where}/{k}")
    elif isinstance(old, list):
        assert len(old) == len(new), where
        for i, (a, b) in enumerate(zip(old, new)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(old, float) or isinstance(new, float):
        assert new == pytest.approx(old, rel=1e-6, abs=1e-300, nan_ok=True), where
    else:
        assert new == old, where


@pytest.mark.parametrize("name", CALIBRATED)
def test_notes_quote_the_calibration_file(name):
    """The calibration figures in course/<name>/NOTES.md are the generated section of its
    calibration.json (`gradkit notes` / `gradkit calibrate` write it), never a hand copy."""
    from gradkit_tools import calnotes

    folder = COURSE / name
    assert calnotes.stale(folder / "NOTES.md", folder / "calibration.json") is None


def test_notes_section_follows_an_edit_of_the_calibration(tmp_path):
    """A changed figure in calibration.json makes the NOTES.md section stale until it is regenerated."""
    from gradkit_tools import calnotes

    notes, cal = tmp_path / "NOTES.md", tmp_path / "calibration.json"
    doc = json.loads((COURSE / "a4_resnet" / "calibration.json").read_text())
    cal.write_text(json.dumps(doc))
    notes.write_text(f"# a4\n\n{calnotes.BEGIN}\n{calnotes.END}\n")
    assert calnotes.stale(notes, cal) is not None
    assert calnotes.write(notes, cal) and calnotes.stale(notes, cal) is None
    key = next(iter(doc["checks"]))
    doc["checks"][key]["mean"] += 0.5
    cal.write_text(json.dumps(doc))
    assert "differs" in calnotes.stale(notes, cal)
    assert f"{doc['checks'][key]['mean']:.4g}" in calnotes.render(doc)


@pytest.mark.parametrize("workers", [1, 2])
def test_calibrating_one_test_keeps_the_others_and_reproduces_it(tmp_path, capsys, workers):
    """`gradkit calibrate a2_init --only test_lecun_normal_distribution` (a new or changed test calibrated
    alone, at the stored file's seeds) gives back the committed runs of that test bit for bit, keeps every
    other test's stored runs, and writes the committed file byte for byte (it holds no timings); in one
    process and, as `--jobs 2`, with the seeds and power runs split over two spawned processes, whose
    progress bar counts the seeds of both as they are done."""
    import re

    from gradkit_tools.calibrate import calibrate

    committed = COURSE / "a2_init" / "calibration.json"
    out = tmp_path / "only.json"
    calibrate("a2_init", out=out, only=["test_lecun_normal_distribution"], progress=workers > 1, workers=workers)
    old, new = json.loads(committed.read_text()), json.loads(out.read_text())
    assert old.keys() == new.keys() and old["checks"].keys() == new["checks"].keys()
    for key, entry in old["checks"].items():
        fresh = new["checks"][key]
        assert fresh["values"] == entry["values"], key  # the re-run test too: same seeds, same draws
        _assert_same(entry, fresh, key)
    assert out.read_bytes() == committed.read_bytes()
    if workers > 1:
        entry = next(e for k, e in old["checks"].items() if k.startswith("test_lecun_normal_distribution:"))
        total = old["runs"] + max((p["runs"] for p in entry["power"].values()), default=0)
        counts = [(int(n), int(of)) for n, of in re.findall(r"in 2 processes:.*?(\d+)/(\d+)", capsys.readouterr().err)]
        assert counts and {of for _, of in counts} == {total}, counts  # one bar over every seed
        assert any(0 < n < total for n, _ in counts), counts  # moving while the processes run
    with pytest.raises(ValueError, match="no stochastic hidden test test_nope"):
        calibrate("a2_init", out=tmp_path / "x.json", only=["test_nope"], progress=False)
