"""Statistics of the stochastic hidden tests of a2_init (Glorot / He initialisers).

* distribution tests: the smallest two-sided p-value of the exact checks (mean: z; variance:
  chi-square; normal tail beyond ``tail_z`` sigma: score test = Wilson interval; uniform: the largest
  ``|w|``); a requirement without noise (seeding, the uniform limit) gives p = 0 or 1.
* ReLU tests: ``max |log(std_l / theory_l)|`` over the first layers, and the deviation of the mean
  per-layer std ratio from 1/sqrt 2 (Glorot) or 1 (He), in ``relu_nets`` pooled square nets.
* ``random_uniform`` distribution test: seeding, the range [minval, maxval], mean (z), variance
  (chi-square, conservative for a uniform), and how close the smallest and largest draws come to the
  ends (exact for n i.i.d. uniform draws).
* circles tests (``circles.py``): mean test accuracy of ``circles_members`` deep tanh nets trained side by
  side from the student's ``glorot_uniform``, and the accuracy gap between shallow and deep nets drawn from
  the student's ``random_uniform`` (seed 004's ``RandomUniform(0, 1)``).

Every statistic of :data:`CHECKS` is ``statistic(components, tol, seed) -> float`` with

components : mapping
    The student's (or :func:`reference`'s) initialisers ``f(shape, dtype="float32", seed=None)`` by
    name, ``"glorot_normal"`` ... ``"he_uniform"`` (and ``random_uniform(shape, minval=0.0, maxval=1.0,
    dtype="float32", seed=None)``); a statistic takes the worst value over those of
    its test present (a test passes one at a time, to say which one failed).
tol : mapping
    The values of tolerances.yml.
seed : int
    The test's seed (:func:`gradkit_grader.seeding.submission_seed`); every draw derives from it.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import keras
import numpy as np
from keras import ops
from scipy import stats

from gradkit._ensemble_layers import derive_seed
from gradkit.stats import variance_interval, wilson_interval
from gradkit_grader.bands import memo
from gradkit_grader.course.a2_init.circles import deep_accuracies, depth_gaps
from gradkit_grader.course.a2_init.draws import draws as _draws
from gradkit_grader.course.a2_init.draws import seeding_findings
from gradkit_grader.course.a2_init.reference import compute_fans
from gradkit_grader.course.a2_init.uniform import uniform_failure, uniform_findings, uniform_pvalue
from gradkit_grader.seeding import code_fingerprint
from gradkit_grader.statistic import Check

__all__ = ["CHECKS", "distribution_findings", "distribution_pvalue", "distribution_failure", "relu_stds",
           "relu_theory", "relu_log_dev_short", "relu_log_dev_deep", "relu_ratio_dev", "circles_accuracy",
           "circles_accuracies", "uniform_findings", "uniform_pvalue", "uniform_failure", "uniform_depth_gap",
           "uniform_depth_gaps", "reference"]

_NAMES = ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal")


#: each rule's variance numerator and the fans it divides by (as written in messages)
_RULES = {"glorot": (2.0, "(fan_in + fan_out)"), "he": (2.0, "fan_in"), "lecun": (1.0, "fan_in")}
_RULE_NAMES = {"glorot": "Glorot", "he": "He", "lecun": "LeCun"}


def _rule_variance(rule: str, shape: tuple) -> float:
    (fan_in, fan_out), (num, _) = compute_fans(shape), _RULES[rule]
    return num / (fan_in + fan_out if rule == "glorot" else fan_in)  # Glorot averages the fans, He/LeCun: fan_in


def _mistakes(rule: str, shape: tuple, var: float) -> dict[str, float]:
    """Variance ratio (got / expected) of the classic mistakes, to name the one a student made."""
    (fan_in, fan_out), (num, fans) = compute_fans(shape), _RULES[rule]
    by_fan_in = rule != "glorot"
    out = {f"the uniform limit sqrt({3 * num:g}/{fans}) as the standard deviation": 3.0,
           f"the standard deviation sqrt({num:g}/{fans}) as the uniform limit": 1 / 3,
           "a truncated normal without dividing its stddev by 0.8796": 0.87962566103423978 ** 2,  # truncated at 2 sd
           "the variance as the standard deviation (no square root)": var}
    for other, (o_num, o_fans) in _RULES.items():
        if other != rule:
            got = _rule_variance(other, shape)
            out[f"{_RULE_NAMES[other]}'s {o_num:g}/{o_fans} instead of {num:g}/{fans}"] = got / var
    if rule == "glorot":  # He's half, 1/fan_in, is LeCun's rule above
        out[f"1/{fans} instead of 2/{fans}"] = 0.5
    if by_fan_in:
        out["fan_out instead of fan_in"] = fan_in / fan_out
    if len(shape) > 2:
        channels = shape[-2] + (0 if by_fan_in else shape[-1])
        out["the channel counts as fans, without the receptive field"] = num / channels / var
    return out


def distribution_findings(fn: Any, what: str, tol: Mapping, seed: int) -> list[tuple[float, str]]:
    """Every check of ``what``'s distribution test with its two-sided p-value.

    Parameters
    ----------
    fn : callable
        The initialiser ``fn(shape, dtype="float32", seed=None)``.
    what : str
        Its name, ``"<glorot|he>_<normal|uniform>"`` or ``"lecun_normal"``: the distribution it must draw.
    tol, seed
        As for every statistic (module docstring); kernel ``i`` of ``tol["shapes"]`` has seed ``derive_seed(seed, i)``.

    Returns
    -------
    list of (float, str)
        ``(p-value, message)`` per check, in a fixed order; the message says what a failure means.
    """
    rule, family = what.split("_")
    alpha, out, shapes = tol["min_pvalue"], [], [tuple(s) for s in tol["shapes"]]
    s1, s2 = derive_seed(seed, 100), derive_seed(seed, 101)
    first, again, other, *kernels = _draws(fn, what, [(shapes[0], s1), (shapes[0], s1), (shapes[0], s2)]
                                           + [(shape, derive_seed(seed, i)) for i, shape in enumerate(shapes)], tol)
    out += seeding_findings(what, first, again, other, s1, s2)
    for shape, w in zip(shapes, kernels):
        w, (fan_in, fan_out) = w.ravel(), compute_fans(shape)
        var, formula = _rule_variance(rule, shape), "{:g}/{}".format(*_RULES[rule])
        n = w.size
        bound = stats.norm.isf(alpha / 2) * math.sqrt(var / n)
        out.append((float(2 * stats.norm.sf(abs(w.mean()) / math.sqrt(var / n))),
                    f"{what}{shape}: mean {w.mean():.3g}, expected 0 (|mean| <= {bound:.2g} for {n} draws, "
                    f"confidence 1 - {alpha:g}): the distribution must be centred at 0"))
        s2_ = float(w.var(ddof=1))
        chi = (n - 1) * s2_ / var
        lo, hi = variance_interval(n, var, 1 - alpha)
        ratio = s2_ / var
        near = sorted((abs(math.log(ratio / r)), desc) for desc, r in _mistakes(rule, shape, var).items()
                      if abs(math.log(r)) > 0.2 and abs(math.log(ratio / r)) < 0.1)
        near = f" Your variance is {ratio:.3g}x the expected one, as if you used {near[0][1]}." if near else ""
        rule_text = f"limit^2/3 = {formula}" if family == "uniform" else formula
        out.append((float(2 * min(stats.chi2.cdf(chi, n - 1), stats.chi2.sf(chi, n - 1))),
                    f"{what}{shape}: sample variance {s2_:.4g}, expected {var:.4g} = {rule_text} with fan_in = "
                    f"{fan_in}, fan_out = {fan_out} (interval [{lo:.4g}, {hi:.4g}] for {n} draws, confidence "
                    f"1 - {alpha:g}).{near}"))
        if family == "normal":  # the fraction beyond tail_z sigma: score test = Wilson interval
            c, p0 = tol["tail_z"], 2 * stats.norm.sf(tol["tail_z"])
            count = int(np.sum(np.abs(w) > c * math.sqrt(var)))
            wlo, whi = wilson_interval(count, n, 1 - alpha)
            out.append((float(2 * stats.norm.sf(abs(count / n - p0) / math.sqrt(p0 * (1 - p0) / n))),
                        f"{what}{shape}: {count} of {n} draws ({count / n:.4f}) lie beyond {c:g} standard "
                        f"deviations; a normal distribution puts {p0:.4f} there (Wilson interval of your "
                        f"fraction: [{wlo:.4f}, {whi:.4f}]). Draw from a plain normal with keras.random.normal "
                        "(not a truncated normal, not a uniform)."))
        else:  # P(max |w| < t) = (t / limit)^n for n draws of U(-limit, limit)
            limit, top = math.sqrt(3 * var), float(np.max(np.abs(w)))
            out.append((float(top <= limit * (1 + tol["uniform_limit_rtol"])),
                        f"{what}{shape}: max |w| = {top:.5g} exceeds the limit {limit:.5g}"))
            reach = limit * alpha ** (1 / n)
            out.append((float(min(1.0, top / limit) ** n),
                        f"{what}{shape}: max |w| = {top:.5g}, but {n} draws from U(-{limit:.4g}, {limit:.4g}) "
                        f"reach beyond {reach:.5g} except with probability {alpha:g}: is your limit too small?"))
    return out


def distribution_pvalue(components: Mapping, tol: Mapping, seed: int) -> float:
    """Smallest p-value of :func:`distribution_findings` over the initialisers in ``components``."""
    return min(p for n in _NAMES if n in components for p, _ in distribution_findings(components[n], n, tol, seed))


def distribution_failure(fn: Any, what: str, tol: Mapping, seed: int) -> str:
    """The message of the check of :func:`distribution_findings` with the smallest p-value (the first
    of equal ones), the most telling failure; "" when every p-value is at least ``min_pvalue``."""
    p, _, message = min((p, i, m) for i, (p, m) in enumerate(distribution_findings(fn, what, tol, seed)))
    return message if p < tol["min_pvalue"] else ""


def relu_theory(rule: str, tol: Mapping) -> np.ndarray:
    """Infinite-width std of ReLU layer l (square layers, N(0, 1) inputs): He sqrt(2) c, Glorot c 2^-(l-1)/2."""
    c, layers = math.sqrt(0.5 - 1.0 / (2.0 * math.pi)), np.arange(tol["relu_depth"])  # c = std(relu(z)), z ~ N(0, 1)
    return np.full(len(layers), math.sqrt(2.0) * c) if rule == "he" else c * 2.0 ** (-layers / 2)


def relu_stds(fn: Any, what: str, tol: Mapping, seed: int) -> np.ndarray:
    """Per-layer std, shape ``(relu_depth,)``, of ``relu_nets`` pooled ReLU nets (memoized per process).

    ``fn``, ``what``: as in :func:`distribution_findings`. Each net has ``relu_depth`` square layers of
    width ``relu_width``, layer l of net k drawn with seed ``derive_seed(seed, k, l)``, and its own
    ``relu_batch`` standard-normal input rows; the std of layer l is ``sqrt(mean over nets of Var)``.
    """
    width, depth, batch, nets = tol["relu_width"], tol["relu_depth"], tol["relu_batch"], tol["relu_nets"]

    def compute() -> np.ndarray:
        rng, var = np.random.default_rng([seed, 7]), np.zeros(depth)
        kernels = _draws(fn, what, [((width, width), derive_seed(seed, k, layer))
                                    for k in range(nets) for layer in range(depth)], tol, dtype=False)
        for k in range(nets):
            a = ops.convert_to_tensor(rng.standard_normal((batch, width)).astype(np.float32))
            for layer in range(depth):
                a = ops.relu(ops.matmul(a, ops.convert_to_tensor(kernels[k * depth + layer].astype(np.float32))))
                var[layer] += float(np.var(ops.convert_to_numpy(a).astype(np.float64)))
        return np.sqrt(var / nets)

    return memo(("a2_init relu_stds", what, code_fingerprint(fn), id(fn), seed, width, depth, batch, nets),
                compute)


def _relu_stat(components: Mapping, tol: Mapping, seed: int, kind: str) -> float:
    values = []
    for name in (n for n in _NAMES if n in components):
        rule = name.split("_")[0]
        std, theory = relu_stds(components[name], name, tol, seed), relu_theory(rule, tol)
        if kind == "ratio":
            target = 1.0 if rule == "he" else 1 / math.sqrt(2.0)
            values.append(abs((std[-1] / std[0]) ** (1.0 / (len(std) - 1)) / target - 1))
        else:
            d = tol["relu_short_depth"] if kind == "short" else len(std)
            values.append(float(np.max(np.abs(np.log(std[:d] / theory[:d])))))
    return float(np.max(values))  # NaN (a broken initialiser) propagates: it fails the bound


def relu_log_dev_short(components: Mapping, tol: Mapping, seed: int) -> float:
    """``max |log(std_l / theory_l)|`` over layers ``1..relu_short_depth``, worst initialiser."""
    return _relu_stat(components, tol, seed, "short")


def relu_log_dev_deep(components: Mapping, tol: Mapping, seed: int) -> float:
    """``max |log(std_l / theory_l)|`` over all ``relu_depth`` layers, worst initialiser."""
    return _relu_stat(components, tol, seed, "deep")


def relu_ratio_dev(components: Mapping, tol: Mapping, seed: int) -> float:
    """``|(std_L / std_1)^(1/(L-1)) / r - 1|`` with r = 1 (He) or 1/sqrt 2 (Glorot), worst initialiser."""
    return _relu_stat(components, tol, seed, "ratio")


def circles_accuracies(components: Mapping, tol: Mapping, seeds: Sequence[int]) -> list[float]:
    """:func:`circles_accuracy` of each seed of ``seeds``, their nets trained side by side
    (:func:`gradkit_grader.course.a2_init.circles.deep_accuracies`)."""
    fn = components["glorot_uniform"]
    return deep_accuracies(lambda calls: _draws(fn, "glorot_uniform", calls, tol, dtype=False), tol, seeds)


def circles_accuracy(components: Mapping, tol: Mapping, seed: int) -> float:
    """Mean test accuracy, in [0, 1], of ``circles_members`` copies of seed 004's deep tanh net with kernels
    drawn from ``components["glorot_uniform"]`` (:func:`gradkit_grader.course.a2_init.circles.deep_accuracy`):
    :func:`circles_accuracies` of the one seed."""
    return circles_accuracies(components, tol, [seed])[0]


def uniform_depth_gaps(components: Mapping, tol: Mapping, seeds: Sequence[int]) -> list[float]:
    """:func:`uniform_depth_gap` of each seed of ``seeds``, their nets trained side by side
    (:func:`gradkit_grader.course.a2_init.circles.depth_gaps`)."""
    fn = components["random_uniform"]
    return depth_gaps(lambda calls: _draws(fn, "random_uniform", calls, tol, dtype=False), tol, seeds)


def uniform_depth_gap(components: Mapping, tol: Mapping, seed: int) -> float:
    """Seed 004's depth gap with kernels from ``components["random_uniform"]`` at its defaults (the lab's
    ``RandomUniform(0, 1)``): mean test accuracy of the shallow nets minus the deep nets'
    (:func:`gradkit_grader.course.a2_init.circles.depth_gap`), in [-1, 1]: :func:`uniform_depth_gaps` of
    the one seed."""
    return uniform_depth_gaps(components, tol, [seed])[0]


def _keras_initializer(make):
    """``f(shape, dtype="float32", seed=None)`` drawing from the Keras initializer ``make(seed)``."""
    return lambda shape, dtype="float32", seed=None: make(seed)(tuple(shape), dtype=dtype)


_VS = keras.initializers.VarianceScaling
#: Keras' own initialisers with the distributions asked for (plain normals, not truncated); module-level
#: objects, so every :func:`reference` call returns the same functions and memoized statistics are shared
_REFERENCE = {"glorot_normal": _keras_initializer(lambda s: _VS(1.0, "fan_avg", "untruncated_normal", seed=s)),
              "glorot_uniform": _keras_initializer(lambda s: keras.initializers.GlorotUniform(seed=s)),
              "he_normal": _keras_initializer(lambda s: _VS(2.0, "fan_in", "untruncated_normal", seed=s)),
              "he_uniform": _keras_initializer(lambda s: keras.initializers.HeUniform(seed=s)),
              "lecun_normal": _keras_initializer(lambda s: _VS(1.0, "fan_in", "untruncated_normal", seed=s)),
              "random_uniform": lambda shape, minval=0.0, maxval=1.0, dtype="float32", seed=None:
              keras.initializers.RandomUniform(minval, maxval, seed=seed)(tuple(shape), dtype=dtype)}


def reference(tol: Mapping) -> dict[str, Any]:  # noqa: ARG001 - the same for every section
    """Keras' own initialisers with the distributions asked for (plain normals, not truncated)."""
    return dict(_REFERENCE)


def _only(*names: str):  # the reference components of a test
    return lambda tol: {n: reference(tol)[n] for n in names}


_G, _H = _NAMES[:2], _NAMES[2:4]
CHECKS = tuple(
    [Check(f"q{9 if n == 'lecun_normal' else 4 + (n in _H)} {n} distribution (min p-value)", f"test_{n}_distribution",
           distribution_pvalue, "min_pvalue", None, _only(n)) for n in _NAMES]
    + [Check(f"q{q} {rule} ReLU nets: {what}", test, stat, key, None, _only(*names))
       for q, rule, names, test in ((4, "Glorot", _G, "test_glorot_shrinks_relu_activations"),
                                    (5, "He", _H, "test_he_keeps_relu_activations"))
       for what, stat, key in (("max |log std/theory|, first layers", relu_log_dev_short, "relu_max_log_dev_short"),
                               ("max |log std/theory|, all layers", relu_log_dev_deep, "relu_max_log_dev_deep"),
                               ("|per-layer std ratio / theory - 1|", relu_ratio_dev, "relu_max_ratio_dev"))]
    + [Check("q4 Glorot circles accuracy", "test_glorot_uniform_trains_deep_tanh_net", circles_accuracy,
             "circles_acc_full", "circles_acc_zero", _only("glorot_uniform"), batched=circles_accuracies),
       Check("q7 random_uniform distribution (min p-value)", "test_random_uniform_distribution", uniform_pvalue,
             "min_pvalue", None, _only("random_uniform")),
       Check("q7 RandomUniform(0, 1) depth gap (shallow - deep accuracy)", "test_uniform_depth_gap", uniform_depth_gap,
             "gap_full", "gap_zero", _only("random_uniform"), batched=uniform_depth_gaps)])
