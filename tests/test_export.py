"""Written answers reach the grader: otter's filtered export of a filled student notebook keeps every manual
question's prompt and the student's answer.

Otter's PDF export first filters the notebook down to the cells between ``<!-- BEGIN QUESTION -->`` and
``<!-- END QUESTION -->`` markers (``BaseExporter.filter_cells``; the filter needs no LaTeX), so a manual
question whose prompt or answer falls outside its markers never reaches the person grading it. The test fills
every answer cell of each released student notebook and runs that filter.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from gradkit_tools import master as master_reader
from gradkit_tools.course import assignment

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["a1_clipping", "a2_init", "a3_dying_relu", "a4_resnet"]
PLACEHOLDER = "_Type your answer here, replacing this text._"


def _prompts(name: str) -> dict[str, str]:
    """``{manual question: the first line of its prompt}`` (the first markdown cell inside its block)."""
    out: dict[str, str] = {}
    master = assignment(name).master
    manual = {q for q, cfg in master_reader.questions(master).items() if cfg.get("manual")}
    for c in master_reader.walk(master):
        if c.question in manual and c.kind == "markdown" and c.block is None and c.question not in out:
            out[c.question] = c.source.strip().splitlines()[0]
    assert set(out) == manual, f"manual questions without a prompt inside their block: {sorted(manual - set(out))}"
    return out


@pytest.mark.parametrize("name", NAMES)
def test_filtered_export_keeps_every_written_answer(name):
    import nbformat
    from otter.export.exporters.base_exporter import BaseExporter

    prompts = _prompts(name)
    nb = nbformat.read(str(ROOT / "assignments" / name / f"{name}.ipynb"), as_version=4)
    answers = [c for c in nb.cells if c.cell_type == "markdown" and PLACEHOLDER in c.source]
    assert len(answers) == len(prompts), f"{len(answers)} answer cells for {len(prompts)} written questions"
    for k, cell in enumerate(answers):
        cell.source = f"My answer number {k}."
    kept = "\n".join(c.source for c in BaseExporter.filter_cells(nb).cells)
    for q, prompt in prompts.items():
        assert prompt in kept, f"{q}'s prompt {prompt!r} is not in the filtered export"
    for k in range(len(answers)):
        assert f"My answer number {k}." in kept, f"written answer {k} is not in the filtered export"


@pytest.mark.parametrize("name", NAMES)
def test_every_question_states_its_points(name):
    """Each question's prompt says what it is worth, as the master's question config counts it."""
    import re

    master = assignment(name).master
    text = "\n".join(c.source for c in master_reader.walk(master) if c.kind == "markdown")
    for q, cfg in master_reader.questions(master).items():
        number, points = int(q[1:]), cfg.get("points")
        unit = "point" if points == 1 else "points"
        pattern = rf"(Question {number}|Q{number}) \({points:g} {unit}\b"
        assert re.search(pattern, text), f"{name} {q}: no prompt says '({points:g} {unit}'"
