"""The grading harness: runs a submission in its own kernel and its hidden tests in this process.

No code of the submission ever runs in this process. The harness

1. starts the student's kernel (:class:`gradkit_grader.kernel.KernelSession`; under ``gradkit
   grade`` inside the submission's sandbox) in a folder holding only the notebook and the student
   package, never the tests or this runtime;
2. runs the notebook's code cells there in order, skipping otter's grading cells
   (``grader.check("q1")``, ``grader.export()``) and cells tagged ``otter_ignore``; where a cell
   was ``grader.check("qN")``, it runs qN's tests at that point, as otter does; the tests of
   questions the notebook never checks run at the end;
3. runs each question's tests (the release's ``tests/qN.py``, otter's exception-based format) in
   this process with otter's own test runner, passing for each name a test declares what
   :meth:`gradkit_grader.remote.Student.lookup` finds in the kernel: a handle that calls the
   student's function there and gets plain data back (:mod:`gradkit_grader.wire`); the tests
   train their reference models here;
4. writes ``results.json`` in Gradescope's format (otter's ``GradingResults.to_gradescope_dict``)
   and a small report of the run.

``python -m gradkit_grader.harness SPEC`` grades as ``gradkit grade`` asks (``SPEC``: a JSON file,
see :func:`grade_spec`); ``--serve`` grades one SPEC per line of stdin (:func:`serve`, the workers of
``gradkit grade``); ``python -m gradkit_grader.harness --gradescope [ROOT]`` grades the
submission in ``ROOT/submission`` (default ``/autograder``) as the zip's ``run_autograder`` does.
"""
from __future__ import annotations

import ast
import glob
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from gradkit import forbid
from gradkit_grader import autodiff, kernelshim, seeding
from gradkit_grader.kernel import KernelGone, KernelSession
from gradkit_grader.remote import Student, StudentRaised
from gradkit_grader.wire import WireError

__all__ = ["grade", "grade_spec", "serve", "gradescope", "main", "grading_cell", "install_code"]

_GRADING_CALLS = ("check", "export", "check_all", "run_tests", "to_pdf")


def grading_cell(source: str) -> list[str] | None:
    """The questions an otter grading cell checks (``[]`` for export cells), or None for other cells.

    A grading cell holds nothing but calls ``<name>.check("qN")``, ``<name>.export(...)`` and the like.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if not tree.body:
        return None
    checked: list[str] = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and call.func.attr in _GRADING_CALLS):
            return None
        if call.func.attr == "check" and call.args and isinstance(call.args[0], ast.Constant) \
                and isinstance(call.args[0].value, str):
            checked.append(call.args[0].value)
    return checked


#: The assignment's forbidden calls per stub (tolerances.yml ``forbidden``, :mod:`gradkit.forbid`),
#: written next to the tests by ``gradkit release``.
FORBIDDEN_FILE = "forbidden.json"


def install_code() -> str:
    """The code that installs the request handler (:mod:`gradkit_grader.kernelshim`) in a kernel,
    in a namespace of its own: only ``__gradkit_rpc__`` is added to the notebook's names."""
    helpers = "\n".join(["from __future__ import annotations", "import inspect, types",
                         inspect.getsource(seeding._code_bytes), inspect.getsource(seeding._canonical),
                         inspect.getsource(autodiff.backend_gradient), inspect.getsource(forbid.traced_call)])
    return (
        "def __gradkit_install__():\n"
        f"    shim, canon = {{}}, {{}}\n"
        f"    exec({inspect.getsource(kernelshim)!r}, shim)\n"
        f"    exec({helpers!r}, canon)\n"
        "    ip = get_ipython()\n"
        "    return shim['install'](ip.user_ns, canon['_canonical'],\n"
        "                           lambda data: ip.display_pub.publish(data=data, metadata={}),\n"
        "                           canon['backend_gradient'], canon['traced_call'])\n"
        "__gradkit_rpc__ = __gradkit_install__()\n"
        "del __gradkit_install__\n")


def _test_files(autograder: Path) -> dict[str, Any]:
    from otter.test_files import ExceptionTestFile

    files = {}
    for path in sorted(glob.glob(str(autograder / "tests" / "*.py"))):
        tf = ExceptionTestFile.from_file(path)
        files[tf.name] = tf
    return files


def _declared(tf: Any) -> list[str]:
    names: list[str] = []
    for tc in tf.test_cases:
        for p in inspect.signature(tc.body.test_func).parameters:
            if p != "env" and p not in names:
                names.append(p)
    return names


def grade(autograder: Path, notebook: Path, outdir: Path, *, prefix: list[str] = (),
          env: dict[str, str] | None = None, kernel_log: Path | None = None, preexec=None) -> dict:
    """Grade ``notebook`` (already in the kernel's folder) with the tests of ``autograder``.

    Returns the report: ``seconds`` (setup, kernel_start, cells, tests), ``cell_errors``
    (``[{cell, ename, evalue}]``; ``cell`` is the ``gradkit_cell`` index in the cell's metadata),
    ``kernel`` (why the kernel stopped, or None), ``notes`` (``"q2: relu raised SystemExit"``),
    ``total``, ``possible``, ``exception`` and ``catastrophic`` (None unless grading itself failed).
    ``outdir/results.json`` gets the results.
    """
    from otter.run.run_autograder.autograder_config import AutograderConfig
    from otter.test_files import GradingResults

    autograder, notebook, outdir = Path(autograder), Path(notebook), Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"exception": None, "catastrophic": None, "cell_errors": [], "kernel": None,
                              "notes": [], "total": None, "possible": None, "altered": []}
    t0 = time.monotonic()
    seconds = report["seconds"] = {"setup": 0.0, "kernel_start": 0.0, "cells": 0.0, "tests": 0.0}
    files = _test_files(autograder)
    rules = json.loads((autograder / FORBIDDEN_FILE).read_text()) if (autograder / FORBIDDEN_FILE).is_file() else {}
    nb = json.loads(notebook.read_text())
    seconds["setup"] = round(time.monotonic() - t0, 2)
    session = KernelSession(notebook.parent, prefix=list(prefix), env=env, log=kernel_log, preexec=preexec)
    seconds["kernel_start"] = round(time.monotonic() - t0 - seconds["setup"], 2)
    try:
        if any("keras" in Path(tf.path).read_text() for tf in files.values()):
            import keras  # noqa: F401 - loaded while the kernel starts up its own copy

        student = Student(session)
        done: set[str] = set()

        def run_tests(names: list[str]) -> None:
            todo = [q for q in names if q in files and q not in done]
            if not todo:
                return
            try:
                res = session.execute(install_code(), timeout_s=60, store_history=False,
                                      when="installing the grader's request handler")
                if res.ename:  # the notebook broke what the handler needs: its tests fail with this
                    report["kernel"] = f"the grader's request handler failed: {res.ename}: {res.evalue}"[:500]
            except KernelGone:
                pass  # every test then fails with the kernel's story
            started = time.monotonic()
            for q in todo:
                done.add(q)
                try:
                    env_q = student.lookup(_declared(files[q]))
                except KernelGone as exc:
                    env_q = {}
                    report["kernel"] = str(exc)
                except (WireError, StudentRaised) as exc:  # the notebook broke the handler: its names are gone
                    env_q = {}
                    report["notes"].append(f"{q}: the kernel's answer to the grader was not data "
                                           f"({type(exc).__name__}: {str(exc)[:120]})")
                before = len(student.notes)
                with forbid.forbidding(rules):  # each stub's forbidden calls, checked in its kernel
                    files[q].run(env_q)
                report["notes"] += [f"{q}: {n}" for n in student.notes[before:]]
            seconds["tests"] = round(seconds["tests"] + time.monotonic() - started, 2)

        for i, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            meta = cell.get("metadata") or {}
            if "otter_ignore" in (meta.get("tags") or []) or (meta.get("otter") or {}).get("ignore"):
                continue
            checked = grading_cell(source)
            if checked is not None:
                run_tests(checked)
                continue
            started = time.monotonic()
            try:
                res = session.execute(source, when=f"running cell {i + 1}")
                seconds["cells"] = round(seconds["cells"] + time.monotonic() - started, 2)
            except KernelGone as exc:
                report["exception"] = {"type": "DeadKernelError", "module": __name__, "message": str(exc)}
                return report
            if res.ename:
                report["cell_errors"].append({"cell": meta.get("gradkit_cell", i), "ename": res.ename,
                                              "evalue": res.evalue[:500]})
        run_tests(sorted(files))
        report["kernel"] = report["kernel"] or session.gone
        results = GradingResults(list(files.values()))
        config = {}
        if (autograder / "otter_config.json").is_file():
            config = json.loads((autograder / "otter_config.json").read_text())
        output = results.to_gradescope_dict(AutograderConfig(config))
        # otter's "Public Tests" entry has no score; Gradescope then needs the total at the top level
        output.setdefault("score", float(results.total))
        (outdir / "results.json").write_text(json.dumps(output, indent=4))
        report["total"], report["possible"] = float(results.total), float(results.possible)
        return report
    finally:
        session.stop()


def _rlimits(pairs: list) -> Any:
    """A ``preexec_fn`` setting ``[[resource, value], ...]`` (the kernel's limits) in the child."""
    import resource

    def apply() -> None:
        for res, value in pairs:
            resource.setrlimit(int(res), (int(value), int(value)))

    return apply if pairs else None


def grade_spec(spec_path: str) -> int:
    """Grade as the JSON file ``spec_path`` says (``autograder``, ``notebook``, ``outdir``, ``report``,
    ``prefix``, ``env``, ``rlimits`` of the kernel); always write the report (whole, by renaming)."""
    spec = json.loads(Path(spec_path).read_text())
    code = 0
    try:
        report = grade(Path(spec["autograder"]), Path(spec["notebook"]), Path(spec["outdir"]),
                       prefix=spec.get("prefix") or [], env=spec.get("env"),
                       preexec=_rlimits(spec.get("rlimits") or []))
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent as data
        report = {"exception": {"type": type(exc).__name__, "module": type(exc).__module__,
                                "message": str(exc)[:2000]}, "catastrophic": None, "cell_errors": [],
                  "kernel": None, "total": None, "possible": None, "altered": []}
        code = 1
    tmp = Path(spec["report"] + ".part")
    tmp.write_text(json.dumps(report))
    os.replace(tmp, spec["report"])
    return code


def serve() -> int:
    """Grade one spec per line of stdin, for as long as stdin is open (a ``gradkit grade`` worker).

    The worker imports Keras once for all the submissions it grades; before each one it sends its
    output to the spec's ``log``, forgets what the previous one memoised and clears Keras' global
    state (layer-name counters, graphs), so that no grade depends on what was graded before.
    """
    from gradkit_grader.bands import clear_memo

    for line in sys.stdin:
        spec_path = line.strip()
        if not spec_path:
            continue
        log = json.loads(Path(spec_path).read_text()).get("log")
        if log:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        clear_memo()
        if "keras" in sys.modules:
            sys.modules["keras"].backend.clear_session()
        grade_spec(spec_path)
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def gradescope(root: str = "/autograder") -> int:
    """Grade ``root/submission``'s notebook as Gradescope runs an autograder; write
    ``root/results/results.json``."""
    root_p = Path(root)
    source = root_p / "source"
    config = json.loads((source / "otter_config.json").read_text()) if (source / "otter_config.json").is_file() \
        else {}
    name = config.get("assignment_name") or "notebook"
    notebooks = sorted((root_p / "submission").glob("*.ipynb"))
    results = root_p / "results"
    results.mkdir(parents=True, exist_ok=True)
    if len(notebooks) != 1:
        output = {"score": 0, "tests": [{"name": "Submission", "output":
                  f"expected one notebook in the submission, found {len(notebooks)}"}]}
        (results / "results.json").write_text(json.dumps(output, indent=4))
        return 1
    kernel_dir = root_p / "kernel"
    shutil.rmtree(kernel_dir, ignore_errors=True)
    kernel_dir.mkdir()
    for entry in (source / "files").iterdir():
        if entry.name != "gradkit_grader" and entry.is_dir():
            shutil.copytree(entry, kernel_dir / entry.name)
    shutil.copyfile(notebooks[0], kernel_dir / f"{name}.ipynb")
    try:
        report = grade(source, kernel_dir / f"{name}.ipynb", results,
                       env=dict(os.environ, PYTHONPATH="", HOME=str(kernel_dir)))
    except Exception as exc:  # noqa: BLE001 - Gradescope shows this text instead of a bare failure
        report = {"exception": {"type": type(exc).__name__, "message": str(exc)[:2000]}}
    if report.get("exception") or report.get("total") is None:
        why = report.get("exception") or {"type": "Error", "message": "no results"}
        text = f"The notebook could not be graded: {why['type']}: {why['message']}"
        output = {"score": 0, "stdout_visibility": "hidden", "tests": [{"name": "Autograder Error", "output": text}]}
        (results / "results.json").write_text(json.dumps(output, indent=4))
        print(output["tests"][0]["output"])
        return 1
    print(f"Total Score: {report['total']:.3f} / {report['possible']:.3f}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--gradescope"]:
        return gradescope(*argv[1:2])
    if argv == ["--serve"]:
        return serve()
    if len(argv) == 1:
        return grade_spec(argv[0])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
