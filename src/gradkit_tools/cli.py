"""``gradkit`` command line: parses arguments and calls library functions.

No logic lives here: every subcommand maps its flags one-to-one onto a
library function's keyword arguments, with the same defaults.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradkit_tools import cli_checks, k8s, slurm
from gradkit_tools.sandbox import MODES as SANDBOX_MODES

__all__ = ["main", "build_parser"]


def _cmd_collapse(args: argparse.Namespace) -> int:
    from gradkit.ensemble import collapse_rate
    from gradkit_grader.course.a3_dying_relu.reference import detector

    for activation in args.activation:
        result = collapse_rate(
            activation,
            detector=detector(args.target),
            members=args.members,
            depth=args.depth,
            width=args.width,
            n_train=args.n_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            target=args.target,
            seed=args.seed,
            progress=not args.quiet,
        )
        print(f"{activation:>10}: {result}")
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    from gradkit_tools.release import ReleaseError, release

    try:
        done = release(args.course, assignments=args.assignments, autograder=args.autograder,
                       names=args.names or None, check=args.check)
    except ReleaseError as exc:
        print(f"gradkit release: {exc}", file=sys.stderr)
        return 1
    for r in done:
        state = "up to date" if args.check else f"-> {r.student_dir}, {r.autograder_dir}"
        print(f"{r.name}: {state} ({sum(r.questions.values()):g} points, {r.seconds:.1f} s)")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from gradkit_tools.grade import GradeError, grade

    try:
        rows = grade(args.autograder, args.submissions, args.out, jobs=args.jobs, timeout_s=args.timeout,
                     memory_mb=args.memory_mb, force=args.force, shard=args.shard, course=args.course,
                     progress=not args.quiet, sandbox_mode=args.sandbox)
    except GradeError as exc:
        print(f"gradkit grade: {exc}", file=sys.stderr)
        return 1
    bad = sum(r["grading_status"] != "graded" for r in rows)
    print(f"graded {len(rows) - bad}, ungradable {bad} -> {args.out}/final_grades.csv")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from gradkit_tools.grade import GradeError, merge

    try:
        print(merge(args.csvs, args.out))
    except GradeError as exc:
        print(f"gradkit merge: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from gradkit_tools.classdata import ReportError
    from gradkit_tools.report import build_report

    out = Path(args.out or Path(args.folders[0]) / "report.html")
    try:
        s = build_report(args.folders, out, json_out=args.json, release=args.assignments,
                         similarity=not args.no_similarity)
    except ReportError as exc:
        print(f"gradkit report: {exc}", file=sys.stderr)
        return 1
    print(f"{s['assignment']}: {s['submissions']} submissions, {len(s['review']['flagged_or_ungradable'])} to "
          f"review, {len(s['similarity']['pairs'])} similar pairs -> {out}")
    return 0


def _cmd_main(args: argparse.Namespace) -> int:
    from gradkit_tools.grade import GradeError
    from gradkit_tools.main import run_main
    from gradkit_tools.release import ReleaseError

    try:
        run_main(args.course, args.assignments, args.autograder, args.examples, args.out, jobs=args.jobs,
                 release_first=not args.no_release, progress=not args.quiet, sandbox_mode=args.sandbox)
    except (ReleaseError, GradeError) as exc:
        print(f"gradkit main: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_examples(args: argparse.Namespace) -> int:
    from gradkit_tools.course import ConfigError, assignments
    from gradkit_tools.examples import CatalogueError, write_submissions

    try:
        for a in assignments(args.course, args.names or None):
            paths = write_submissions(a, assignments=args.assignments, check=args.check)
            print(f"{a.name}: {len(paths)} example submissions {'up to date' if args.check else 'written'}")
    except (CatalogueError, ConfigError, OSError) as exc:
        print(f"gradkit examples: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_grade_examples(args: argparse.Namespace) -> int:
    from gradkit_tools.course import ConfigError, assignments
    from gradkit_tools.examples import CatalogueError
    from gradkit_tools.grade import GradeError
    from gradkit_tools.grade_examples import format_adversarial, format_verdicts, grade_examples

    validate = args.func is _cmd_validate
    kinds = ["tamper"] if validate else (args.kinds.split(",") if args.kinds else None)
    try:
        names = [a.name for a in assignments(args.course, args.names or None)]
        verdicts = grade_examples(names, course=args.course, autograder=args.autograder,
                                  assignments=args.assignments, kinds=kinds,
                                  only=args.only.split(",") if args.only else None, out=args.out, jobs=args.jobs,
                                  timeout_s=args.timeout, progress=not args.quiet)
    except (CatalogueError, ConfigError, GradeError, OSError) as exc:
        print(f"gradkit {'validate' if validate else 'grade-examples'}: {exc}", file=sys.stderr)
        return 1
    print(format_adversarial(verdicts) if validate else format_verdicts(verdicts))
    return 0 if verdicts and all(v.ok for v in verdicts) else 1


def _cmd_validate(args: argparse.Namespace) -> int:
    return _cmd_grade_examples(args)


def _add_examples_args(p: argparse.ArgumentParser, what: str) -> None:
    """The arguments grade-examples and validate share (``what``: the word for one example)."""
    p.add_argument("names", nargs="*", help="assignments (default: every one of the course)")
    _add_course(p)
    p.add_argument("--autograder", default="autograder", help="folder of the released autograders")
    p.add_argument("--assignments", default="assignments", help="student releases the examples are built from")
    p.add_argument("--only", default=None, help=f"comma-separated {what} names to grade")
    p.add_argument("-o", "--out", default=None, help="keep the grades in <out>/<name>/ (default: a temporary folder)")
    p.add_argument("--jobs", type=int, default=None, help="parallel submissions (default: usable cores)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per submission (default: course/grading.yml)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_sandbox(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sandbox", choices=SANDBOX_MODES, default="bwrap",
                   help="bwrap (default): each submission in its own bubblewrap sandbox, grading stops if it "
                        "cannot start; none: no sandbox, every row flagged")


def _add_course(p: argparse.ArgumentParser) -> None:
    p.add_argument("--course", default=None, help="course folder (default: the repository's course/)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collapse", help="run the dying-ReLU collapse study (seed 002, Lu et al.)")
    p.add_argument("--activation", nargs="+", default=["relu", "leaky_relu"], help="registry names")
    p.add_argument("--members", type=int, default=1000, help="independent networks")
    p.add_argument("--depth", type=int, default=10, help="hidden layers")
    p.add_argument("--width", type=int, default=2, help="units per hidden layer")
    p.add_argument("--n-train", type=int, default=3000, help="training points per network")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--target", default="abs", choices=["abs", "xsin5x", "step_sin"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_collapse)

    p = sub.add_parser("release", help="generate student notebooks and autograders from the course's masters")
    p.add_argument("names", nargs="*", help="assignments to release (default: every one of the course)")
    _add_course(p)
    p.add_argument("--assignments", default="assignments", help="output folder of the student releases")
    p.add_argument("--autograder", default="autograder", help="output folder of the autograders")
    p.add_argument("--check", action="store_true",
                   help="compare a fresh release with the committed one; exit 1 if stale")
    p.set_defaults(func=_cmd_release)

    p = sub.add_parser("grade", help="grade submissions: each kernel in a sandbox, hidden tests in the harness")
    p.add_argument("autograder", help="autograder.zip, its folder, or an assignment name")
    p.add_argument("submissions", nargs="+", help=".ipynb/.zip submissions or folders holding them")
    p.add_argument("-o", "--out", required=True, help="output folder (final_grades.csv, results/, logs/)")
    p.add_argument("--jobs", type=int, default=None, help="parallel submissions (default: usable cores)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per submission (default: course/grading.yml grade.submission_timeout_s)")
    p.add_argument("--memory-mb", type=int, default=None,
                   help="address-space limit in MB, 0 = none (default: course/grading.yml grade.memory_limit_mb)")
    p.add_argument("--force", action="store_true", help="regrade submissions already graded")
    p.add_argument("--shard", default=None, metavar="K/N", help="grade only the K-th of N slices (by file name)")
    _add_sandbox(p)
    _add_course(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("report", help="one HTML page (and --json) on a graded class: scores, failing cases, "
                                      "bands, review queue, similarity, time")
    p.add_argument("folders", nargs="+", help="`gradkit grade` output folders (shards of one batch are merged)")
    p.add_argument("-o", "--out", default=None, help="HTML file (default: <first folder>/report.html)")
    p.add_argument("--json", default=None, help="also write the numbers as JSON here")
    p.add_argument("--assignments", default="assignments",
                   help="folder of the student notebooks: their code is the template similarity ignores")
    p.add_argument("--no-similarity", action="store_true", help="skip the code-similarity section")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("main", help="release every assignment and grade the solution and the blank notebook")
    _add_course(p)
    p.add_argument("--assignments", default="assignments")
    p.add_argument("--autograder", default="autograder")
    p.add_argument("--examples", default="examples", help="extra submissions in <examples>/<name>/")
    p.add_argument("-o", "--out", default="out", help="grades per assignment in <out>/<name>/")
    p.add_argument("--jobs", type=int, default=None, help="parallel submissions (default: usable cores)")
    p.add_argument("--no-release", action="store_true", help="grade the committed release as is")
    _add_sandbox(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_main)

    p = sub.add_parser("merge", help="combine final_grades.csv files of grade --shard runs")
    p.add_argument("csvs", nargs="+", help="shard CSVs")
    p.add_argument("-o", "--out", default="final_grades.csv", help="merged CSV")
    p.set_defaults(func=_cmd_merge)

    p = sub.add_parser("examples", help="build each assignment's example submissions from its answers.yml")
    p.add_argument("names", nargs="*", help="assignments (default: every one of the course)")
    _add_course(p)
    p.add_argument("--assignments", default="assignments", help="student releases (the notebooks filled in)")
    p.add_argument("--check", action="store_true",
                   help="compare with a fresh build instead of writing; exit 1 if stale")
    p.set_defaults(func=_cmd_examples)

    p = sub.add_parser("grade-examples", help="grade the example submissions and compare with their expected scores")
    _add_examples_args(p, "example")
    p.add_argument("--kinds", default=None,
                   help="comma-separated kinds to grade (correct,wrong,blank,malformed,tamper)")
    p.set_defaults(func=_cmd_grade_examples)

    p = sub.add_parser("validate", help="grade the adversarial (tamper) examples; table of attack, expected, actual")
    _add_examples_args(p, "attack")
    p.set_defaults(func=_cmd_validate)

    cli_checks.add_parsers(sub)
    slurm.add_parser(sub)
    k8s.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
