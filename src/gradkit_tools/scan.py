"""Static scan of a student release for solution code, hidden tests and otter markers.

:func:`scan_release` runs after every ``gradkit release``: it reads the master
notebook (the tolerance-baked copy that otter saw) to learn what must stay
secret -- the bodies of solution blocks and the source of every hidden test --
and fails on any student file that contains one of them or an otter marker
(``BEGIN/END SOLUTION``, ``# SOLUTION``, ``BEGIN/END TESTS``, ``hidden: true``).
The scan of submissions for tampering is :mod:`gradkit_tools.tamper`.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from gradkit_tools.master import walk
from gradkit_tools.reproducible import iter_strings

__all__ = ["Leak", "MARKERS", "master_secrets", "scan_release"]

#: Text that must never reach a student file: otter's master-notebook markers
#: and the decorator of a hidden test in otter's generated test files.
MARKERS = {
    "BEGIN SOLUTION": re.compile(r"#\s*BEGIN\s+SOLUTION\b"),
    "END SOLUTION": re.compile(r"#\s*END\s+SOLUTION\b"),
    "# SOLUTION": re.compile(r"#\s?SOLUTION\b"),
    "BEGIN TESTS": re.compile(r"#\s*BEGIN\s+TESTS\b"),
    "END TESTS": re.compile(r"#\s*END\s+TESTS\b"),
    "hidden: true": re.compile(r"\bhidden\s*:\s*(?:true|yes)\b", re.IGNORECASE),
    "hidden=True": re.compile(r"\bhidden\s*=\s*True\b"),
    "BEGIN QUESTION": re.compile(r"#\s*BEGIN\s+QUESTION\b"),
    "ASSIGNMENT CONFIG": re.compile(r"#\s*ASSIGNMENT\s+CONFIG\b"),
}

_MIN_SECRET = 8     # normalised characters; shorter lines (``return x``) are not distinctive
_MIN_SUBSTRING = 24  # a secret this long is also found inside a longer line


@dataclass(frozen=True)
class Leak:
    """A secret found in a student file."""

    file: str
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}: {self.text!r}"


def _norm(line: str) -> str:
    """Whitespace-free, single-quoted form, so otter's ``ast.unparse`` of a test still matches."""
    return re.sub(r"\s+", "", line).replace('"', "'")


def _hidden_test_body(src: str) -> tuple[bool, list[str]]:
    """Whether a test cell is hidden, and its code lines without the config header."""
    lines = src.splitlines()
    if not lines:
        return False, []
    hidden, start = False, 0
    if lines[0].lstrip().startswith("#"):
        hidden, start = bool(re.search(r"\bhidden\b", lines[0], re.IGNORECASE)), 1
    if lines[0].lstrip().startswith('"""') and "BEGIN TEST CONFIG" in lines[0]:
        end = next((i for i, ln in enumerate(lines) if "END TEST CONFIG" in ln), 0)
        header = "\n".join(lines[1:end])
        hidden = bool(re.search(r"^\s*hidden\s*:\s*(true|yes)\s*$", header, re.IGNORECASE | re.MULTILINE))
        start = end + 1
    return hidden, lines[start:]


def master_secrets(master: str | Path | Any) -> tuple[dict[str, str], set[str]]:
    """What of a master notebook students must not see.

    Parameters
    ----------
    master : path or notebook
        The master notebook (otter's raw-cell format, field guide section 1).

    Returns
    -------
    secrets : dict
        ``{normalised line: description}`` for every line of a solution
        block body, of a ``# SOLUTION`` line, of a markdown answer and of a
        hidden test (as written and as otter re-formats it), minus lines that
        also appear in the visible part of the master.
    public : set of str
        Normalised lines of the visible part.
    """
    secret: dict[str, str] = {}
    public: set[str] = set()

    def add(lines: Iterable[str], what: str) -> None:
        for ln in lines:
            n = _norm(ln)
            if len(n) >= _MIN_SECRET:
                secret.setdefault(n, what)

    for c in walk(master, strict=False):
        if c.marker:
            continue
        question = c.question or "?"
        if c.block == "tests" and c.kind == "code":
            hidden, body = _hidden_test_body(c.source)
            if hidden:
                add(_test_forms(body), f"hidden test of {question}")
            else:
                public.update(_norm(ln) for ln in [*c.source.splitlines(), *_test_forms(body)])
            continue
        if c.block == "solution" and c.kind == "markdown":
            add(c.source.splitlines(), f"written answer to {question}")
            continue
        if c.kind == "code":
            sol, vis = _split_solution_code(c.source)
            add(sol, f"solution code of {question}" if c.block == "solution" else "solution code")
            public.update(_norm(ln) for ln in vis)
            continue
        public.update(_norm(ln) for ln in c.source.splitlines())
    # Text that students see anyway (also inside a longer visible line) is no secret.
    visible = "\n".join(public)
    return {k: v for k, v in secret.items() if k not in public and k not in visible}, public


def _test_forms(body: list[str]) -> list[str]:
    """A test's lines as written and as otter stores them (``ast.unparse`` of the def)."""
    try:
        tree = ast.parse("\n".join(body))
        return [*body, *ast.unparse(tree.body[0]).splitlines()]
    except (SyntaxError, IndexError):
        return list(body)


def _split_solution_code(src: str) -> tuple[list[str], list[str]]:
    """(solution lines, visible lines) of a code cell per otter's in-cell markers."""
    sol, vis, inside = [], [], False
    for ln in src.splitlines():
        s = ln.strip()
        if re.match(r"#\s*BEGIN SOLUTION", s):
            inside = True
        elif re.match(r"#\s*END SOLUTION", s):
            inside = False
        elif inside:
            sol.append(ln)
        elif re.search(r"#\s?SOLUTION(\s+NO PROMPT)?\s*$", ln):
            code = re.sub(r"#\s?SOLUTION(\s+NO PROMPT)?\s*$", "", ln)
            m = re.match(r"\s*[\w.\[\]'\", ]+?=(?!=)(.*)$", code)
            sol.append(m.group(1) if m else code)   # ``x = 5  # SOLUTION`` shows ``x = ...``
        else:
            vis.append(ln)
    return sol, vis


def _file_lines(path: Path) -> list[str] | None:
    """Text lines of a student file (every string of a notebook's JSON); None for binary files."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        try:
            return [ln for s in iter_strings(json.loads(text)) for ln in s.splitlines()]
        except json.JSONDecodeError:
            pass
    return text.splitlines()


def scan_release(student_dir: str | Path, master: str | Path | Any, *, label: str | None = None) -> list[Leak]:
    """Secrets of ``master`` found in any file under ``student_dir``.

    Returns
    -------
    list of Leak
        Empty when the release is clean; otherwise one entry per file and
        leaked text (markers first), naming the file relative to ``label``
        (default: ``student_dir``).
    """
    student_dir = Path(student_dir)
    label = label or str(student_dir)
    secrets, _ = master_secrets(master)
    long_secrets = [(s, d) for s, d in secrets.items() if len(s) >= _MIN_SUBSTRING]
    leaks: list[Leak] = []
    for path in sorted(p for p in student_dir.rglob("*") if p.is_file()):
        lines = _file_lines(path)
        if lines is None:
            continue
        rel = f"{label}/{path.relative_to(student_dir).as_posix()}"
        found: dict[tuple[str, str], None] = {}
        for ln in lines:
            for name, rx in MARKERS.items():
                if rx.search(ln):
                    found[(f"marker {name!r}", ln.strip())] = None
            n = _norm(ln)
            if n in secrets:
                found[(secrets[n], ln.strip())] = None
                continue
            for s, desc in long_secrets:
                if s in n:
                    found[(desc, ln.strip())] = None
                    break
        leaks.extend(Leak(rel, kind, text[:200]) for kind, text in found)
    return leaks
