"""Mutation testing of the autograders (gradkit_tools.mutants, gradkit_tools.mutation).

* The operators, on a toy function whose every mutant is known: each edit appears once, compiles, and leaves
  the docstring alone; ids are unique.
* Every assignment: each mutant of each solution stub graded by its question's hidden tests (the exact ones;
  a stub whose hidden tests are all banded is screened with ``gradkit mutate --bands`` and checked in the slow
  suite) loses points or is listed as equivalent in ``course/<name>/mutants.yml`` with its argument; the
  figures agree with the recorded ``mutation.json`` that NOTES.md shows; no listed equivalent is stale.
"""
from __future__ import annotations

import ast

import pytest

from gradkit_tools.course import assignment
from gradkit_tools.mutants import OPERATORS, mutants

NAMES = ["a1_clipping", "a2_init", "a3_dying_relu", "a4_resnet"]

TOY = '''
def f(x, y=2, *, flag=True):
    """Docstring: 1 + 1 stays."""
    z = x + y * 3
    if z >= 0 and flag:
        z = -z
    w = g(z, x, key="relu")
    return w if z is None else z / 2.0
'''


def test_every_operator_edits_the_toy_once_each_site():
    ms = mutants(TOY)
    ids = [m.id for m in ms]
    assert len(ids) == len(set(ids))
    for m in ms:
        compile(m.source, m.id, "exec")
        assert '"""Docstring: 1 + 1 stays."""' in m.source or "'Docstring: 1 + 1 stays.'" in m.source
        assert m.function == "f" and m.operator in OPERATORS
    details = {(m.operator, m.id.split(":", 3)[3]) for m in ms}
    for expected in [("binop", "Add->Sub"), ("binop", "Mult->Div"), ("binop", "Div->Mult"),
                     ("compare", "GtE->Gt"), ("compare", "Is->IsNot"), ("constant", "3->4"), ("constant", "2.0->4.0"),
                     ("constant", "True->False"), ("constant", "0->1"), ("negate", "USub"), ("boolop", "And->Or"),
                     ("ifexp", "body"), ("ifexp", "orelse"), ("keyword", "drop key"), ("argswap", "args 0,1"),
                     ("drop", "Assign"), ("drop", "If"), ("swap", "with L4"), ("string", "relu->tanh")]:
        assert expected in details, expected
    # the function's own signature defaults are sites too (a default is part of the spec)
    assert ("constant", "2->3") in details


def test_mutant_sources_differ_from_the_solution():
    original = ast.unparse(ast.parse(TOY))
    assert all(m.source != original for m in mutants(TOY))
    assert mutants(TOY, ["other"]) == []


@pytest.mark.parametrize("name", NAMES)
def test_equivalents_name_current_mutants(name):
    """Every id of mutants.yml is a mutant of today's solution, with a one-line argument."""
    from gradkit_tools import master as master_reader
    from gradkit_tools.mutation import equivalents

    ids = set()
    for cells in master_reader.solution_code(assignment(name).master).values():
        ids |= {m.id for m in mutants("".join(master_reader.strip_solution_marks(c) + "\n" for c in cells))}
    listed = {**equivalents(name), **equivalents(name, "not_graded")}
    assert set(listed) <= ids, f"stale ids in mutants.yml: {sorted(set(listed) - ids)}"
    assert all("\n" not in why.strip() for why in listed.values())


@pytest.mark.parametrize("name", NAMES)
def test_every_mutant_loses_points_or_is_equivalent(name):
    """The exact screen: no surviving mutant that is not listed as equivalent, no listed one that is killed,
    and the figures of mutation.json (NOTES.md's table) are today's."""
    from gradkit_tools.mutation import recorded, scores, screen

    outcomes = screen(name, progress=False)
    survivors = [o.mutant.id for o in outcomes if o.status == "survived"]
    assert survivors == [], f"mutants that lose no point on their question: {survivors}"
    stale = [o.mutant.id for o in outcomes if o.killed_by and (o.equivalent or o.not_graded)]
    assert stale == [], f"listed in mutants.yml, but the hidden tests fail them: {stale}"
    rec = recorded(name)
    for stub, sc in scores(outcomes).items():
        assert rec.get(stub, {}).get("screen") == "exact", f"{stub}: run gradkit mutate {name} --write"
        assert (rec[stub]["mutants"], rec[stub]["killed"], rec[stub]["equivalent"], rec[stub]["not_graded"]) == \
            (sc.mutants, sc.killed, sc.equivalent, sc.not_graded), \
            f"{stub}: mutation.json is stale (gradkit mutate {name} --write)"


@pytest.mark.slow
def test_banded_stubs_lose_points_or_are_equivalent():
    """Stubs graded by banded tests only (a3's run_study): every mutant fails a band or is equivalent."""
    from gradkit_tools.mutation import recorded, scores, screen

    for name in NAMES:
        banded = [s for s, r in recorded(name).items() if r["screen"] != "exact"]
        if banded:
            outcomes = screen(name, functions=banded, bands=True, progress=False)
            assert [o.mutant.id for o in outcomes if o.status == "survived"] == []
            for stub, sc in scores(outcomes).items():
                assert recorded(name)[stub]["killed"] == sc.killed


@pytest.mark.slow
def test_a_sample_of_mutants_agrees_under_otter_run():
    """One killed and one equivalent mutant per stub of a1, graded by the real otter run with the committed
    zip: the killed ones lose points on their question, the equivalent ones keep them all."""
    from gradkit_tools.mutation import screen
    from gradkit_tools.mutotter import otter_verdicts, sample

    verdicts = otter_verdicts("a1_clipping", sample(screen("a1_clipping", progress=False)))
    assert {v.status for v in verdicts} == {"killed", "equivalent"}
    assert all(v.agrees for v in verdicts), verdicts
