"""A graded class as plain tables: what ``gradkit report`` shows, read from ``gradkit grade`` output.

:func:`load_class` reads one or more output folders of ``gradkit grade`` (shards of one batch are
merged by file name) -- ``summary.json`` and ``results/<stem>.json`` (otter's results plus the
``gradkit`` record) -- and the autograder zip the summary names, whose ``tests/<q>.py`` give each
hidden test case's name and points in otter's order. Otter reports a case as ``q2 - 6``;
:func:`case_outcomes` turns a question's output into ``{case name: failure message or None}``.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

__all__ = ["ClassData", "Case", "ReportError", "load_class", "case_outcomes", "band_position", "read_cases",
           "SEED_NOTE"]

_CASE = re.compile(r"^\s*(?P<q>\S+) - (?P<i>\d+) result:\s*\n\s*(?P<mark>\S+) Test case (?P<status>passed|failed)",
                   re.MULTILINE)
_ERROR_LINE = re.compile(r"^\s*(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)|AssertionError):", re.MULTILINE)
#: the seed note every stochastic failure carries; stripped when messages are grouped
SEED_NOTE = re.compile(r"\s*\[hidden-test seed \d+[^\]]*\]")
_BAND = re.compile(r"= (?P<value>\S+): part (?P<step>\d+)/(?P<steps>\d+) of this test's credit needs (?:at least|at "
                   r"most) \S+ \(full credit at (?P<full>[^,]+), none at (?P<zero>[^,]+), linear")


class ReportError(ValueError):
    """The folders cannot be read as one graded class; the message names the file."""


@dataclass(frozen=True)
class Case:
    """One hidden-test case of the autograder: question, name, points (None: a share of the rest)."""

    question: str
    name: str
    points: float | None
    hidden: bool


@dataclass
class ClassData:
    """Everything the report shows, as plain data."""

    assignment: str
    questions: dict[str, float]
    records: list[dict]                       # the ``gradkit`` record of each submission, by file name
    outcomes: dict[str, dict[str, str | None]]  # file -> case -> failure message (None: passed)
    cases: list[Case]
    devices: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)

    @property
    def possible(self) -> float:
        return float(sum(self.questions.values()))


def read_cases(zip_path: str | os.PathLike) -> list[Case]:
    """The test cases of an autograder zip's ``tests/*.py``, in otter's order (file, then definition)."""
    out: list[Case] = []
    with zipfile.ZipFile(zip_path) as zf:
        for name in sorted(n for n in zf.namelist() if re.fullmatch(r"tests/[^/]+\.py", n)):
            tree = ast.parse(zf.read(name).decode("utf-8"))
            q = Path(name).stem
            for node in tree.body:
                if not isinstance(node, ast.FunctionDef):
                    continue
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "test_case":
                        kw = {k.arg: ast.literal_eval(k.value) for k in dec.keywords if k.arg in ("points", "hidden")}
                        out.append(Case(q, node.name, kw.get("points"), bool(kw.get("hidden", False))))
    return out


def _message(block: str) -> str:
    """The failure message of one case's output block: from the exception line to the end."""
    m = _ERROR_LINE.search(block)
    text = block[m.start():] if m else block
    return " ".join(text.split())


def case_outcomes(output: str, names: list[str]) -> dict[str, str | None]:
    """``{case name: None if passed else its failure message}`` of one question's otter output.

    ``names`` are the question's cases in otter's order; "All test cases passed!" passes them all.
    """
    if "All test cases passed!" in output and not _CASE.search(output):
        return {n: None for n in names}
    marks = list(_CASE.finditer(output))
    out: dict[str, str | None] = {}
    for j, m in enumerate(marks):
        i = int(m.group("i")) - 1
        name = names[i] if 0 <= i < len(names) else f"{m.group('q')} - {m.group('i')}"
        end = marks[j + 1].start() if j + 1 < len(marks) else len(output)
        out[name] = None if m.group("status") == "passed" else _message(output[m.end():end])
    return out


def band_position(message: str) -> float | None:
    """Where a failed band case's value lies, in steps (e.g. 2.9 = just below step 3), or None."""
    m = _BAND.search(message or "")
    if not m:
        return None
    try:
        value, full, zero = float(m.group("value")), float(m.group("full")), float(m.group("zero"))
    except ValueError:
        return None
    if not all(map(math.isfinite, (value, full, zero))) or full == zero:
        return None
    credit = min(1.0, max(0.0, (value - zero) / (full - zero)))
    return credit * int(m.group("steps"))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not readable JSON ({exc})") from None


def load_class(folders: Iterable[str | os.PathLike], autograder: str | os.PathLike | None = None) -> ClassData:
    """Read ``gradkit grade`` output folders (one batch, or its shards) as one :class:`ClassData`.

    Raises
    ------
    ReportError
        A folder without ``summary.json`` or results, or folders of different assignments.
    """
    records: dict[str, dict] = {}
    payloads: dict[str, dict] = {}
    assignment, zip_path, devices, names = None, autograder, [], []
    for folder in map(Path, folders):
        summary_path = folder / "summary.json"
        if not summary_path.is_file():
            raise ReportError(f"{folder} is no `gradkit grade` output folder: no summary.json")
        summary = _read_json(summary_path)
        if assignment is not None and summary.get("assignment") != assignment:
            raise ReportError(f"{folder} graded {summary.get('assignment')!r}, the others {assignment!r}")
        assignment = summary.get("assignment")
        zip_path = zip_path or summary.get("autograder")
        devices.append(summary.get("device", ""))
        names.append(str(folder))
        for f in sorted((folder / "results").glob("*.json")):
            payload = _read_json(f)
            rec = payload.get("gradkit")
            if isinstance(rec, dict) and "file" in rec:
                records[rec["file"]] = rec
                payloads[rec["file"]] = payload
    if not records:
        raise ReportError(f"no graded submissions in {', '.join(names)}")
    cases = read_cases(zip_path) if zip_path and Path(zip_path).is_file() else []
    questions: dict[str, float] = {}
    for p in payloads.values():
        for t in p.get("tests", []):
            if "max_score" in t:
                questions[t["name"]] = float(t["max_score"])
    if not questions:  # nothing graded (all ungradable): the records' questions, points unknown
        questions = {q: 0.0 for q in next(iter(records.values()))["scores"]}
    by_q = {q: [c.name for c in cases if c.question == q] for q in questions}
    outcomes = {}
    for file, p in payloads.items():
        got: dict[str, str | None] = {}
        if records[file]["grading_status"] == "graded":
            for t in p.get("tests", []):
                if "max_score" in t:
                    got.update(case_outcomes(str(t.get("output") or ""), by_q.get(t["name"], [])))
        outcomes[file] = got
    return ClassData(assignment or "", dict(sorted(questions.items())), [records[k] for k in sorted(records)],
                     outcomes, cases, sorted(set(devices)), names)
