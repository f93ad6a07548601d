"""Data sets: shapes, ranges, seeding discipline, the seeds' facts."""
import math

import numpy as np
import pytest

from gradkit import data


def test_rng_is_required_and_checked():
    with pytest.raises(ValueError, match="rng="):
        data.two_spirals(rng=None)
    with pytest.raises(TypeError):
        data.circles(rng="seed")


@pytest.mark.parametrize("fn", [data.two_spirals, data.circles, data.moons])
def test_2d_sets_seeded_and_scaled(fn):
    X1, y1 = fn(rng=3)
    X2, y2 = fn(rng=3)
    X3, _ = fn(rng=4)
    assert np.array_equal(X1, X2) and np.array_equal(y1, y2)
    assert not np.array_equal(X1, X3)
    assert X1.shape[1] == 2 and X1.dtype == np.float32 and len(X1) == len(y1)
    assert X1.min() == pytest.approx(-1) and X1.max() == pytest.approx(1)
    assert set(np.unique(y1)) == {0.0, 1.0} and abs(y1.mean() - 0.5) < 0.05


def test_spirals_shape_and_noise_validation():
    X, y = data.two_spirals(250, noise=0.5, rng=0)
    assert X.shape == (500, 2) and y[:250].sum() == 0 and y[250:].sum() == 250
    with pytest.raises(ValueError):
        data.two_spirals(0, rng=0)


def test_lu_targets_and_interval():
    assert data.LU_INTERVAL == (-math.sqrt(7), math.sqrt(7))
    x = np.array([-1.0, 0.0, 0.5])
    np.testing.assert_allclose(data.lu_target("abs", x), [1, 0, 0.5])
    np.testing.assert_allclose(data.lu_target("xsin5x", x), x * np.sin(5 * x))
    np.testing.assert_allclose(data.lu_target("step_sin", x), (x > 0) + 0.2 * np.sin(5 * x))
    with pytest.raises(KeyError, match="known"):
        data.lu_target("square", x)


def test_lu_dataset_per_member_draws():
    x, y = data.lu_dataset(3000, "abs", rng=0, members=4)
    assert x.shape == y.shape == (3000, 1, 4)
    lo, hi = data.LU_INTERVAL
    assert x.min() >= lo and x.max() <= hi
    assert not np.array_equal(x[..., 0], x[..., 1])  # each member its own data
    np.testing.assert_allclose(y, np.abs(x), rtol=1e-6)
    # uniform on the interval: mean 0 +- 4 SE, SE = (hi-lo)/sqrt(12 n)
    assert abs(x.mean()) < 4 * (hi - lo) / math.sqrt(12 * x.size)


def test_linear_explode_is_seed_004():
    x, y = data.linear_explode()
    assert x.shape == (100, 1) and x[0, 0] == 0 and x[-1, 0] == 99
    np.testing.assert_array_equal(y, 5 + 10 * x)


def test_offline_sets():
    X, y = data.iris()
    assert X.shape == (150, 2) and set(y) == {0, 1, 2}
    X, y = data.digits()
    assert X.shape == (1797, 64) and 0 <= X.min() and X.max() <= 1 and set(y) == set(range(10))


def test_train_test_split():
    X, y = np.arange(20).reshape(10, 2), np.arange(10)
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, 0.3, rng=0)
    assert len(Xte) == 3 and len(Xtr) == 7
    assert sorted(np.concatenate([ytr, yte])) == list(range(10))
    np.testing.assert_array_equal(Xtr[:, 0] // 2, ytr)
