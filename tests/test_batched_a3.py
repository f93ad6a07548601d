"""a3_dying_relu's calibration path: each check's ``batched`` (statistics.each_seed) runs the statistic seed by
seed inside :func:`gradkit.ensemble.reuse_models`, where the studies of one layout train on one traced model
(weights redrawn, optimizer reset) instead of a new model each. It must give what the statistic gives alone,
bit for bit: the rates, and the studies' raw grid outputs and loss histories (a rate, k/500, would hide a
last-bit difference); wrong answers their own values; the stored calibration's values at its own seeds."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gradkit import _ensemble_fit as F
from gradkit import ensemble as E
from gradkit.activations import ACTIVATIONS
from gradkit_grader.course.a3_dying_relu import reference as R
from gradkit_grader.course.a3_dying_relu import statistics as S
from gradkit_tools.calibrate import run_check, spread_seeds, wrong_answers
from gradkit_tools.course import tolerances

CALIBRATION = Path(__file__).resolve().parents[1] / "course" / "a3_dying_relu" / "calibration.json"
LEAKY = ACTIVATIONS["leaky_relu"]


def _tol(**small) -> dict:
    """a3's tolerances; ``small`` overrides (a copy)."""
    return {**tolerances("a3_dying_relu"), **small}


def _small() -> dict:
    return _tol(study_members=16, study_epochs=1)


def _bits(a) -> bytes:
    """The array's bytes: equal bytes are equal floats bit for bit (-0.0 and NaN payloads included)."""
    return np.ascontiguousarray(a).tobytes()


def _same_result(a, b) -> bool:
    return (_bits(a.outputs) == _bits(b.outputs) and _bits(a.losses) == _bits(b.losses)
            and _bits(a.collapsed) == _bits(b.collapsed) and _bits(a.diverged) == _bits(b.diverged))


def _same_values(a, b) -> bool:
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def _value(statistic, components, tol, seed) -> float:
    """The statistic, NaN where it raises (a failing run, as gradkit_tools.calibrate.run_check scores it)."""
    try:
        return float(statistic(components, tol, seed))
    except Exception:  # noqa: BLE001
        return math.nan


def _recording(components: dict, results: list) -> dict:
    """``components`` whose run_study also appends each CollapseResult it returns to ``results``."""
    run_study = components["run_study"]

    def recorded(*args, **kwargs):
        res = run_study(*args, **kwargs)
        results.append(res)
        return res
    return {**components, "run_study": recorded}


@pytest.mark.parametrize("initializer", ["he_normal", "glorot_uniform", "orthogonal", "random_normal"])
def test_reseed_draws_the_weights_of_a_new_build(initializer):
    """reseed_ensemble(model, s) == the weights of build_ensemble_mlp(..., seed=s), byte for byte, for the joint
    VarianceScaling draw, a per-member initializer (orthogonal) and an i.i.d. one; and it changes them."""
    kw = dict(activation="relu", initializer=initializer)
    model = E.build_ensemble_mlp(6, 3, 2, seed=1, **kw)
    before = [_bits(w) for w in model.get_weights()]
    E.reseed_ensemble(model, 2)
    fresh = E.build_ensemble_mlp(6, 3, 2, seed=2, **kw)
    assert [_bits(w) for w in model.get_weights()] == [_bits(w) for w in fresh.get_weights()]
    assert [_bits(w) for w in model.get_weights()] != before


def test_reuse_models_trains_one_model_per_layout_as_a_new_one(monkeypatch):
    """Inside reuse_models the studies (ReLU seed 3, leaky 3, ReLU 5, ReLU 3 again: the last after another
    seed's training, so a weight or optimizer state left over would show) equal those of new models, outputs
    and losses bit for bit, and only two models are built (one per activation)."""
    kw = dict(members=12, n_train=200, epochs=2, detector=R.detector("abs"), progress=False)
    runs = [("relu", 3), (LEAKY, 3), ("relu", 5), ("relu", 3)]
    fresh = [E.collapse_rate(act, seed=s, **kw) for act, s in runs]
    builds = []
    build = E.build_ensemble_mlp
    monkeypatch.setattr(E, "build_ensemble_mlp", lambda *a, **k: builds.append(a) or build(*a, **k))
    with E.reuse_models():
        reused = [E.collapse_rate(act, seed=s, **kw) for act, s in runs]
        assert len(F._REUSE.get()[0]) == 2
    assert F._REUSE.get() is None
    assert len(builds) == 2
    assert all(_same_result(a, b) for a, b in zip(fresh, reused))
    assert not _same_result(fresh[0], fresh[2])  # seeds 3 and 5 differ: the comparison can fail
    builds.clear()
    with E.reuse_models(limit=1):  # alternating layouts with room for one: each study builds its model
        evicted = [E.collapse_rate(act, seed=s, **kw) for act, s in runs[:3]]
    assert len(builds) == 3
    assert all(_same_result(a, b) for a, b in zip(fresh, evicted))


@pytest.mark.parametrize("index", [0, 1], ids=["relu_rate", "leaky_rate"])
def test_each_seed_equals_the_statistic_seed_by_seed(index):
    """check.batched over 3 seeds == the statistic seed by seed (a 16-network, 1-epoch study), and each seed's
    study result (grid outputs, loss history, flags) bit for bit."""
    check, tol, seeds = S.CHECKS[index], _small(), spread_seeds(3, 5)
    assert check.batched is not None
    alone, together = [], []
    comps = S.reference(tol)
    one = [check.statistic(_recording(comps, alone), tol, s) for s in seeds]
    batched = check.batched(_recording(comps, together), tol, seeds)
    assert _same_values(batched, one)
    assert len(alone) == len(together) == len(seeds)
    assert all(_same_result(a, b) for a, b in zip(alone, together))


@pytest.mark.slow
def test_wrong_answers_get_their_own_values():
    """Every power wrong answer's values by the batched path (its chunk in the same reuse block as the
    reference's, so a model shared across components would show) == its statistic seed by seed (~40 s on
    2 cores: slow)."""
    tol, seeds = _small(), spread_seeds(2, 9)
    wrong = wrong_answers("a3_dying_relu")
    assert len(wrong) >= 4
    for check, entry, comps in wrong:
        alone = [_value(check.statistic, comps, tol, s) for s in seeds]
        with E.reuse_models():
            check.batched(check.reference(tol), tol, seeds)
            together = check.batched(comps, tol, seeds)
        assert _same_values(together, alone), entry


def test_a_failing_seed_is_nan_and_the_others_are_kept():
    """A seed whose statistic raises is NaN in the batched values (as run_check scores it), not the chunk's end."""
    tol, seeds = _small(), spread_seeds(3, 11)

    def run_study(activation, members, **kw):
        assert kw["seed"] != seeds[1], "this seed fails"
        return R.run_study(activation, members, **kw)
    comps = {**S.reference(tol), "run_study": run_study}
    check = S.CHECKS[0]
    with pytest.raises(AssertionError, match="this seed fails"):
        check.statistic(comps, tol, seeds[1])
    values = check.batched(comps, tol, seeds)
    assert math.isnan(values[1]) and not math.isnan(values[0]) and not math.isnan(values[2])
    assert values[0] == check.statistic(comps, tol, seeds[0])
    assert _same_values(list(run_check(check, tol, seeds, components=comps)), values)


def test_born_dead_kept_ensemble_equals_a_new_one(monkeypatch):
    """born_dead keeps its ensemble and redraws it per seed: the same flags as a new ensemble per seed, which
    differ between seeds (so a redraw that did not happen would show)."""
    tol, seeds = _tol(), spread_seeds(3, 13)
    kept = [S.born_dead(tol, s) for s in seeds]
    new = []
    for s in seeds:
        monkeypatch.setattr(S, "_INITIAL", [None, None])
        new.append(S.born_dead(tol, s))
    assert [_bits(a) for a in kept] == [_bits(b) for b in new]
    assert _bits(kept[0]) != _bits(kept[1])


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1], ids=["relu_rate", "leaky_rate"])
def test_each_seed_reproduces_the_stored_calibration(index):
    """The batched path at 20 of calibration.json's seeds (spread over its 300) gives its stored values exactly
    (~1 min per check on 2 cores); and at the first 2 of them, the same study results as the statistic alone."""
    stored = json.loads(CALIBRATION.read_text())
    check, tol = S.CHECKS[index], _tol()
    values = next(v for k, v in stored["checks"].items() if k.startswith(f"{check.test}:"))["values"]
    seeds = spread_seeds(stored["runs"], stored["first_seed"])
    picked = list(range(0, stored["runs"], stored["runs"] // 20))[:20]
    together = []
    got = check.batched(_recording(S.reference(tol), together), tol, [seeds[i] for i in picked])
    assert got == [values[i] for i in picked]
    alone = []
    one = [check.statistic(_recording(S.reference(tol), alone), tol, seeds[i]) for i in picked[:2]]
    assert one == got[:2]
    assert all(_same_result(a, b) for a, b in zip(alone, together[:2]))


def test_hidden_study_steps_are_xla_compiled():
    """calibration.json's runs were made with the hidden study's steps XLA-compiled on TensorFlow (its size is
    above ``_XLA_MIN_WORK``; course/a3_dying_relu/NOTES.md, Calibration): the graph without XLA gives other last
    bits, so a threshold moved above the study would grade on a computation other than the calibrated one."""
    import inspect

    import keras

    from gradkit._ensemble_layers import resolve_jit

    tol, defaults = _tol(), inspect.signature(E.collapse_rate).parameters  # run_study keeps n_train, batch_size
    steps = math.ceil(defaults["n_train"].default / defaults["batch_size"].default)
    work = tol["study_members"] * steps * tol["study_epochs"]
    assert work == 117_500
    assert resolve_jit("auto", work) is (keras.backend.backend() in ("tensorflow", "jax"))
