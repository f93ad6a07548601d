"""Spec-clause tables (gradkit_tools.clauses): every clause of every stub is quoted from its master and graded by
a named hidden test or marked not graded with a reason; NOTES.md shows the current tables."""
from __future__ import annotations

import pytest

from gradkit_tools import clauses

NAMES = ["a1_clipping", "a2_init", "a3_dying_relu", "a4_resnet"]


@pytest.mark.parametrize("name", NAMES)
def test_clause_table_matches_its_master(name):
    assert clauses.problems(name) == []
    table = clauses.load(name)
    assert table and all(any(c.tests for c in rows) for rows in table.values())


@pytest.mark.parametrize("name", NAMES)
def test_notes_show_the_tables(name):
    assert clauses.stale(name) is None, f"run gradkit notes {name}"


def test_a_clause_without_test_or_source_is_reported(monkeypatch):
    real = clauses.load("a4_resnet")
    rows = real["residual_block"]
    broken = dict(real, residual_block=[
        *rows[2:],  # the docstring's first two lines are now in no clause
        clauses.Clause("residual_block", "a sentence the master never says", ("test_block_seeds",)),
        clauses.Clause("residual_block", "Width of the block's output."),  # neither tests nor a reason
        clauses.Clause("residual_block", "Width of the block's output.", ("test_no_such_case",)),
        clauses.Clause("residual_block", "Width of the block's output.", ("test_prob_dead",), "both"),
    ])
    monkeypatch.setattr(clauses, "load", lambda name: broken)
    found = "\n".join(clauses.problems("a4_resnet"))
    assert "'a sentence the master never says': not quoted from the master" in found
    assert found.count("needs exactly one of tests: and not_graded:") == 2
    assert "test_no_such_case is no hidden test" in found
    assert "docstring text 'One residual block for Dense layers" in found


def test_a_test_of_another_question_is_reported(monkeypatch):
    real = clauses.load("a4_resnet")
    broken = dict(real, build_resnet=[*real["build_resnet"],
                                      clauses.Clause("build_resnet", "Width of the block's output.",
                                                     ("test_block_seeds",))])
    monkeypatch.setattr(clauses, "load", lambda name: broken)
    assert any("test_block_seeds (of q1) does not take build_resnet" in p for p in clauses.problems("a4_resnet"))
