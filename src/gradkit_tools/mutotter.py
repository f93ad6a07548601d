"""A sample of mutants graded by the real ``otter run`` with the released autograder zip.

The mutation screen (:mod:`gradkit_tools.mutation`) runs the hidden tests in process. This module checks a
sample of its verdicts the way a submission is graded: the mutant becomes the stub's answer cell of the
student notebook (as the answer catalogue's entries do), ``python -m otter run`` grades it with
``autograder/<name>/autograder.zip``, and the question's score in ``results.json`` must agree with the screen:
a killed mutant loses points on its question, an equivalent one keeps them all.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gradkit_tools.course import assignment
from gradkit_tools.examples import build_submission, solution_answers
from gradkit_tools.mutation import Outcome

__all__ = ["OtterVerdict", "sample", "otter_verdicts", "format_verdicts"]


@dataclass(frozen=True)
class OtterVerdict:
    """The screen's status of one mutant and its question's points under ``otter run``."""

    mutant: str
    question: str
    status: str
    score: float
    max_score: float

    @property
    def agrees(self) -> bool:
        """Killed in process <=> points lost under otter."""
        return (self.status == "killed") == (self.score < self.max_score)


def sample(outcomes: list[Outcome], per_stub: int = 1) -> list[Outcome]:
    """Per stub, its first ``per_stub`` killed mutants and its first ``per_stub`` equivalent ones (screen order)."""
    out: list[Outcome] = []
    for status in ("killed", "equivalent"):
        seen: dict[str, int] = {}
        for o in outcomes:
            if o.status == status and seen.get(o.mutant.function, 0) < per_stub:
                seen[o.mutant.function] = seen.get(o.mutant.function, 0) + 1
                out.append(o)
    return out


def otter_verdicts(name: str, outcomes: list[Outcome], *, autograder: str | Path = "autograder",
                   assignments: str | Path = "assignments", timeout_s: float = 900) -> list[OtterVerdict]:
    """Grade each of ``outcomes``' mutants with ``otter run``; one verdict per mutant.

    Parameters
    ----------
    name : str
        Assignment; its student notebook ``assignments/<name>/<name>.ipynb`` and autograder
        ``autograder/<name>/autograder.zip`` must be current (``gradkit release``).
    outcomes : list of Outcome
        What :func:`gradkit_tools.mutation.screen` returned for these mutants (usually :func:`sample`'s).
    timeout_s : float
        Wall clock per ``otter run``.
    """
    a = assignment(name)
    student = json.loads((Path(assignments) / name / f"{name}.ipynb").read_text())
    solutions = solution_answers(a.master)
    zip_path = (Path(autograder) / name / "autograder.zip").resolve()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="gradkit-mutants-") as tmp:
        for k, o in enumerate(outcomes):
            entry = {"kind": "wrong", "answers": {o.question: {"code": o.mutant.source}}}
            folder = Path(tmp) / f"m{k}"
            folder.mkdir()
            notebook = folder / f"{name}.ipynb"
            notebook.write_bytes(build_submission(re.sub(r"\W", "_", o.mutant.id), entry, student, solutions))
            proc = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", str(folder),
                                   "--no-logo", str(notebook)], cwd=folder, capture_output=True, text=True,
                                  timeout=timeout_s, env=env)
            results = folder / "results.json"
            if not results.is_file():
                raise RuntimeError(f"otter run on mutant {o.mutant.id} wrote no results.json "
                                   f"(exit {proc.returncode}): {(proc.stdout + proc.stderr)[-2000:]}")
            tests = {t["name"]: t for t in json.loads(results.read_text())["tests"] if "max_score" in t}
            entry_q = tests[o.question]
            verdicts.append(OtterVerdict(o.mutant.id, o.question, o.status, float(entry_q["score"]),
                                         float(entry_q["max_score"])))
    return verdicts


def format_verdicts(name: str, verdicts: list[OtterVerdict]) -> str:
    """One line per mutant: screen status, otter's points on its question, agreement."""
    rows = [f"{name}: a sample of mutants under otter run ({sum(v.agrees for v in verdicts)}/{len(verdicts)} agree)"]
    rows += [f"  {'ok ' if v.agrees else 'BAD'} {v.mutant:<52} {v.status:<10} {v.question} "
             f"{v.score:g}/{v.max_score:g}" for v in verdicts]
    return "\n".join(rows)
