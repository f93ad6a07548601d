"""Tests of gradkit._epochs: the per-member shuffled epochs behind fit_ensemble, and how fit gets them.

The reference is the definition written the slow, obvious way (one ``permutation(n)`` per
member and epoch, one member at a time); the fast version (block draws on threads, member-major
gather) must give the same bytes.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradkit import _epochs


def reference_epoch_data(x, y, epochs, batch_size, seed, stream):
    n, members = x.shape[0], x.shape[-1]
    steps = math.ceil(n / batch_size)
    padded = steps * batch_size
    xa = np.zeros((epochs, padded) + x.shape[1:], np.float32)
    ya = np.zeros((epochs, padded) + y.shape[1:], np.float32)
    for m in range(members):
        rng = np.random.default_rng([seed, stream, m])
        for e in range(epochs):
            perm = rng.permutation(n)
            rows = np.concatenate([perm, perm[np.arange(padded - n) % n]])  # padding repeats the epoch's first rows
            xa[e, :, :, m] = x[rows, :, m]
            ya[e, :, :, m] = y[rows, :, m]
    sw = np.tile((np.arange(padded) < n).astype(np.float32), epochs)
    return xa.reshape((-1,) + x.shape[1:]), ya.reshape((-1,) + y.shape[1:]), sw, steps


@pytest.mark.parametrize("n, dx, dy, members, epochs, batch, chunk_rows", [
    (100, 1, 1, 7, 3, 16, None),   # partial last batch: padded with weight-0 rows
    (64, 1, 1, 4, 2, 64, None),    # exactly one batch: no padding
    (37, 3, 2, 5, 4, 8, None),     # several features in and out
    (50, 2, 1, 9, 9, 16, 700),     # index block smaller than the epochs: drawn block by block
    (10, 1, 1, 3, 0, 4, None),     # no epochs
])
def test_epoch_data_matches_reference(monkeypatch, n, dx, dy, members, epochs, batch, chunk_rows):
    if chunk_rows:
        monkeypatch.setattr(_epochs, "_SHUFFLE_CHUNK_ROWS", chunk_rows)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, dx, members), dtype=np.float32)
    y = rng.standard_normal((n, dy, members), dtype=np.float32)
    got = _epochs.epoch_data(x, y, epochs, batch, seed=11, stream=2)
    want = reference_epoch_data(x, y, epochs, batch, seed=11, stream=2)
    assert got[3] == want[3]
    for g, w, name in zip(got[:3], want[:3], ("x", "y", "sample_weight")):
        assert g.shape == w.shape and g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)


def test_epoch_data_does_not_depend_on_thread_count(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 1, 11), dtype=np.float32)
    outs = []
    for threads in (1, 3):
        monkeypatch.setattr(_epochs, "_threads", lambda work, t=threads: t)
        outs.append(_epochs.epoch_data(x, x * 2, 4, 8, seed=0, stream=2))
    for a, b in zip(outs[0][:3], outs[1][:3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.backends
def test_fit_inputs_feed_the_rows_in_order():
    """Whatever the backend's form (a tf.data pipeline or arrays), fit sees consecutive batches."""
    import keras

    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 2, 3), dtype=np.float32)
    xa, ya, sw, steps = _epochs.epoch_data(x, x[:, :1] ** 2, 2, 8, seed=1, stream=2)
    kw = _epochs.fit_inputs(xa, ya, sw, 8)
    assert kw["shuffle"] is False
    if keras.backend.backend() == "tensorflow":
        assert set(kw) == {"x", "shuffle"}
        batches = [tuple(t.numpy() for t in b) for b in kw["x"]]
        assert len(batches) == 2 * steps
        for i, (bx, by, bw) in enumerate(batches):
            rows = slice(8 * i, 8 * (i + 1))
            np.testing.assert_array_equal(bx, xa[rows])
            np.testing.assert_array_equal(by, ya[rows])
            np.testing.assert_array_equal(bw, sw[rows])
    else:
        assert kw["x"] is xa and kw["y"] is ya and kw["sample_weight"] is sw and kw["batch_size"] == 8
