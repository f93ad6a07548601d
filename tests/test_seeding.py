"""gradkit_grader.seeding: per-submission seeds are reproducible, code-dependent and the same in every process."""
import subprocess
import sys
import textwrap

import pytest

from gradkit_grader.seeding import SEED_LIMIT, code_fingerprint, seed_note, submission_seed


def _defs(src: str) -> dict:
    ns: dict = {}
    exec(compile(textwrap.dedent(src), "<cell>", "exec"), ns)
    return ns


def test_same_code_same_seed_other_code_other_seed():
    a = _defs("def f(x):\n    return max(x, 0)\n")["f"]
    b = _defs("def f(x):\n    return max(x, 0)\n")["f"]
    c = _defs("def f(x):\n    return max(x, 0.0)\n")["f"]  # one constant differs
    assert submission_seed(1, a) == submission_seed(1, b)
    assert submission_seed(1, a) != submission_seed(1, c)
    assert submission_seed(1, a) != submission_seed(2, a)
    assert submission_seed(1, a, None) != submission_seed(1, None, a)  # order and missing functions count
    assert 0 <= submission_seed(123, a) < SEED_LIMIT
    # plain answers (a name chosen from a list): their values decide, not only their type
    assert submission_seed(1, "plain", "BN only") == submission_seed(1, "plain", "BN only")
    assert submission_seed(1, "plain", "BN only") != submission_seed(1, "BN only", "plain")
    assert submission_seed(1, 1) != submission_seed(1, True) != submission_seed(1, "1")


def test_fingerprint_ignores_file_names_and_line_numbers():
    """Kernels name cells differently in every process; only the code may matter."""
    a = {}
    exec(compile("def g(x):\n    return [x, {'a', 'b'}]\n", "/tmp/ipykernel_1/1.py", "exec"), a)
    b = {}
    exec(compile("\n\n\ndef g(x):\n    return [x, {'a', 'b'}]\n", "/tmp/ipykernel_2/9.py", "exec"), b)
    assert code_fingerprint(a["g"]) == code_fingerprint(b["g"])


def test_fingerprint_is_the_same_in_another_process():
    """Hash randomisation (PYTHONHASHSEED) must not change the seed: a regrade reproduces it."""
    src = "def h(x):\n    s = frozenset({'p', 'q', 'r', 's'})\n    return (lambda y: y in s)(x)\n"
    prog = ("import sys; from gradkit_grader.seeding import submission_seed; ns = {}; "
            f"exec(compile({src!r}, '<c>', 'exec'), ns); print(submission_seed(5, ns['h']))")
    seeds = {subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True,
                            env={"PYTHONHASHSEED": str(k), "PATH": ""}).stdout.strip() for k in (1, 2, 3)}
    assert len(seeds) == 1 and seeds.pop().isdigit()


def test_classes_and_bad_base():
    ns = _defs("class Block:\n    def call(self, x):\n        return x + 1\n")
    other = _defs("class Block:\n    def call(self, x):\n        return x + 2\n")
    assert submission_seed(0, ns["Block"]) != submission_seed(0, other["Block"])
    with pytest.raises(TypeError, match="base seed"):
        submission_seed("7", ns["Block"])
    assert "seed 42" in seed_note(42)


def _same_in_kernel(code: str, ns: dict, tmp_path) -> None:
    """Run ``code`` in a real Jupyter kernel: each function ``ns`` defines (in ``__main__``) has the same
    canonical bytes and seed there as in ``ns``."""
    import os
    import types

    from gradkit_grader.harness import install_code
    from gradkit_grader.kernel import KernelSession
    from gradkit_grader.remote import Student
    from gradkit_grader.seeding import _canonical

    mine = sorted(k for k, v in ns.items() if isinstance(v, types.FunctionType) and v.__module__ == "__main__")
    assert mine, "the code defines no function"
    session = KernelSession(tmp_path, env=dict(os.environ, HOME=str(tmp_path)))
    try:
        for cell in (code, install_code()):
            res = session.execute(cell, store_history=False)
            assert res.ename is None, res.evalue
        remote = Student(session).lookup(mine)
        for fn in mine:
            assert remote[fn].__gradkit_canonical__() == _canonical(ns[fn]), fn
            assert submission_seed(0, remote[fn]) == submission_seed(0, ns[fn]), fn
    finally:
        session.stop()


@pytest.mark.parametrize(("name", "entry"), [("a1_clipping", "wrong_global_per_tensor_norm"),
                                             ("a4_resnet", "wrong_block_always_project")])
def test_catalogue_code_gets_in_process_the_seed_it_gets_graded(name, entry, tmp_path):
    """The catalogue tests run an entry's code in process (gradkit_tools.answers.namespace), grading runs it
    in a Jupyter kernel: every function it defines has the same fingerprint in both (its source text), so an
    in-process test draws the inputs the graded example notebook draws."""
    from gradkit_tools.answers import entry_code, namespace
    from gradkit_tools.course import assignment

    a = assignment(name)
    _same_in_kernel(entry_code(a, entry), namespace(a, entry), tmp_path)


def test_solution_code_gets_in_process_the_seed_it_gets_graded(tmp_path):
    """The same for the solutions the assignment tests run in process (tests/_masters.namespace): a solution
    test draws the inputs the graded solution notebook draws."""
    from _masters import master_parts, master_path, namespace, setup_source

    master = master_path("a4_resnet")
    _, solutions, _ = master_parts(master)
    setup = setup_source(master) + "\n"
    ns = namespace(setup, *solutions.values())
    _same_in_kernel(setup + "\n".join(solutions.values()), ns, tmp_path)
