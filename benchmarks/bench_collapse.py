"""Collapse study: gradkit's ensemble trainer vs a loop of separate Keras models, in one run.

    .venv/bin/python benchmarks/bench_collapse.py [--members 1000] [--epochs 10] [--sample 3]

The naive baseline trains ``--sample`` ordinary Keras models one after the
other (the seed notebook's way, with the same data size, batch and epochs) and
extrapolates to ``--members``; the ensemble trains all members as one model.
Prints a table with both times and their ratio. Not a test: nothing asserts.
"""
from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from gradkit import data
from gradkit.ensemble import collapse_rate


def naive_seconds_per_net(sample: int, epochs: int, n_train: int = 3000, batch: int = 64) -> float:
    """Mean wall time of training one 10x2 ReLU net as its own Keras model."""
    times = []
    for s in range(sample):
        x, y = data.lu_dataset(n_train, "abs", rng=s)
        t0 = time.perf_counter()
        model = keras.Sequential([keras.Input((1,))]
                                 + [keras.layers.Dense(2, activation="relu",
                                                       kernel_initializer=keras.initializers.HeNormal(seed=s * 100 + i))
                                    for i in range(10)]
                                 + [keras.layers.Dense(1, kernel_initializer=keras.initializers.HeNormal(seed=s))])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
        times.append(time.perf_counter() - t0)
    return float(np.mean(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--sample", type=int, default=3, help="separate models timed for the baseline")
    args = ap.parse_args()

    per_net = naive_seconds_per_net(args.sample, args.epochs)
    naive_total = per_net * args.members
    t0 = time.perf_counter()
    result = collapse_rate("relu", members=args.members, epochs=args.epochs, seed=0, progress=False)
    ens = time.perf_counter() - t0

    print(f"backend {keras.backend.backend()}, {args.members} members x {args.epochs} epochs, "
          f"3000 points, batch 64")
    print(f"{'method':<32}{'seconds':>12}")
    print(f"{'loop of Keras models (extrap.)':<32}{naive_total:>12.1f}   ({per_net:.2f} s/net over {args.sample})")
    print(f"{'gradkit ensemble':<32}{ens:>12.1f}")
    print(f"{'ratio':<32}{naive_total / ens:>12.0f}x")
    print(f"relu: {result}")


if __name__ == "__main__":
    main()
