"""Device probe of ``gradkit grade`` (run as a script, never imported by gradkit).

It imports no gradkit module: importing the ``gradkit`` package pulls in Keras,
which a grading child does not need (the student's kernel imports what the
notebook and the hidden tests import).

``python gradechild.py probe``
    Prints a JSON object describing the device Keras trains on in this
    environment: ``backend`` and ``device`` (e.g. ``"GPU: NVIDIA H100"``).
"""
from __future__ import annotations

import json
import os
import sys


def probe() -> dict:
    """Ask the Keras backend which devices it sees."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import keras

    backend = keras.backend.backend()
    gpus: list[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        for d in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(d)
            gpus.append(details.get("device_name", d.name))
    elif backend == "jax":
        import jax

        gpus = [f"{d.platform}:{d.id} {getattr(d, 'device_kind', '')}".strip()
                for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    device = ("GPU: " + ", ".join(gpus)) if gpus else "CPU"
    return {"backend": backend, "device": device}


def main(argv: list[str]) -> int:
    if argv[:1] == ["probe"]:
        try:
            print(json.dumps(probe()))
        except BaseException as exc:  # noqa: BLE001
            print(json.dumps({"backend": "unknown", "device": f"unknown (probe failed: {type(exc).__name__}: {exc})"}))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
