"""Child process of ``gradkit grade`` (run as a script, never imported by gradkit).

It imports no gradkit module: importing the ``gradkit`` package pulls in Keras,
which a grading child does not need (the student's kernel imports what the
notebook and the hidden tests import).

``python gradechild.py run AUTOGRADER SUBMISSION OUTDIR REPORT [MANIFEST]``
    Runs the real ``otter run -a AUTOGRADER -o OUTDIR --no-logo SUBMISSION``
    (otter's click command, in this process) and writes REPORT, a JSON object:
    ``altered`` (hidden-test and support files that no longer match the sha256
    recorded in MANIFEST, the release's manifest.json, checked in this process,
    outside the student's kernel, before and after the notebook runs),
    ``exception`` (type, module, message of what otter raised, or null),
    ``catastrophic`` (otter's catastrophic-error text, or null), ``cell_errors``
    (``[{cell, ename, evalue}]`` from the executed notebook; ``cell`` is the
    ``gradkit_cell`` index the parent put in each cell's metadata, null for
    cells otter inserted), ``total`` and ``possible``.

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


def _cell_errors(nb) -> list[dict]:
    out = []
    for cell in getattr(nb, "cells", []) or []:
        for o in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if o.get("output_type") == "error":
                out.append({"cell": cell.get("metadata", {}).get("gradkit_cell"),
                            "ename": str(o.get("ename", "")), "evalue": str(o.get("evalue", ""))[:500]})
    return out


def _altered(expected: dict[str, str]) -> list[str]:
    """Files of ``expected`` (paths in the grading directory -> sha256) that differ or are gone."""
    import hashlib

    bad = []
    for path, digest in expected.items():
        try:
            with open(path, "rb") as f:
                ok = hashlib.sha256(f.read()).hexdigest() == digest
        except OSError:
            ok = False
        if not ok:
            bad.append(path)
    return bad


def _watch_files(manifest: str, rec: dict) -> None:
    """Check the release's tests and support files around otter's notebook run.

    otter copies the zip's ``tests/`` to ``tests/`` and ``files/X`` to ``X`` of the submission
    directory, where the notebook (the student's code) runs and the tests are read; any
    difference from the manifest's sha256 there, before or after the run, is recorded.
    """
    with open(manifest) as f:
        files = json.load(f)["files"]
    expected = {(k[len("files/"):] if k.startswith("files/") else k): v for k, v in files.items()
                if k.startswith(("tests/", "files/"))}
    from otter.run.run_autograder.runners import python_runner

    original = python_runner.grade_notebook

    def checked_grade_notebook(*args, **kwargs):
        before = _altered(expected)
        try:
            return original(*args, **kwargs)
        finally:
            rec["altered"] = sorted(set(before) | set(_altered(expected)))

    python_runner.grade_notebook = checked_grade_notebook


def run(autograder: str, submission: str, outdir: str, report: str, manifest: str | None = None) -> int:
    """Grade one submission with ``otter run``; always write ``report``."""
    rec: dict = {"exception": None, "catastrophic": None, "cell_errors": [], "total": None, "possible": None,
                 "altered": None}
    code = 0
    try:
        from otter.cli import cli

        if manifest:
            _watch_files(manifest, rec)

        results = cli.main(args=["run", "-a", autograder, "-o", outdir, "--no-logo", submission],
                           prog_name="otter", standalone_mode=False)
        rec["cell_errors"] = _cell_errors(getattr(results, "notebook", None))
        if results.has_catastrophic_failure():
            rec["catastrophic"] = f"{type(results.catastrophic_error).__name__}: {results.catastrophic_error}"[:2000]
        rec["total"], rec["possible"] = float(results.total), float(results.possible)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent as data
        rec["exception"] = {"type": type(exc).__name__, "module": type(exc).__module__,
                            "message": str(exc)[:2000]}
        code = 1
    with open(report, "w") as f:
        json.dump(rec, f)
    return code


def main(argv: list[str]) -> int:
    if argv[:1] == ["probe"]:
        try:
            print(json.dumps(probe()))
        except BaseException as exc:  # noqa: BLE001
            print(json.dumps({"backend": "unknown", "device": f"unknown (probe failed: {type(exc).__name__}: {exc})"}))
        return 0
    if argv[:1] == ["run"] and len(argv) in (5, 6):
        return run(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
