"""``gradkit sweep | calibrate | mutate | notes``: the commands that check the hidden tests themselves.

Part of the command line (:mod:`gradkit_tools.cli` adds these subcommands with :func:`add_parsers`); as
there, every flag maps one-to-one onto a library function's keyword argument, with the same default.
"""
from __future__ import annotations

import argparse
import sys

from gradkit_tools import slurm

__all__ = ["add_parsers"]


def _cmd_mutate(args: argparse.Namespace) -> int:
    from gradkit_tools import clauses
    from gradkit_tools.mutation import record, run

    gaps = 0
    for name in args.names:
        outcomes, table = run(name, functions=args.stub, bands=args.bands, progress=not args.quiet)
        print(table)
        gaps += sum(o.status == "survived" for o in outcomes)
        if args.write:
            print(f"{name}: wrote {record(name, outcomes, bands=args.bands)}"
                  + ("; NOTES.md updated" if clauses.write(name) else ""))
        if args.otter_sample:
            from gradkit_tools.mutotter import format_verdicts, otter_verdicts, sample

            verdicts = otter_verdicts(name, sample(outcomes, args.otter_sample))
            print(format_verdicts(name, verdicts))
            gaps += sum(not v.agrees for v in verdicts)
    return 1 if gaps else 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from gradkit_tools.calibrate import format_reports, sweep

    reports = [r for name in args.names for r in sweep(name, args.seeds, first_seed=args.first_seed,
                                                       power_runs=args.power_runs, progress=not args.quiet,
                                                       batch_runs=args.batch_runs)]
    print(format_reports(reports))
    short = [why for r in reports if (why := r.sweep_shortfall(args.min_margin))]
    for why in short:
        print(why, file=sys.stderr)
    return 1 if short else 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from gradkit_tools.calibrate import calibrate, format_reports, refit, repower

    if args.out and len(args.names) > 1:
        print("gradkit calibrate: -o names one file; give one assignment with it", file=sys.stderr)
        return 2
    if args.shard or args.merge:
        return slurm.calibrate_parts(args)
    if args.refit:
        reports = [r for name in args.names for r in refit(name, out=args.out)]
    elif args.power_only:
        reports = [r for name in args.names for r in repower(name, power_runs=args.power_runs, out=args.out,
                                                             progress=not args.quiet)]
    else:
        reports = [r for name in args.names for r in calibrate(name, args.runs, out=args.out,
                                                               first_seed=args.first_seed,
                                                               power_runs=args.power_runs, workers=args.jobs,
                                                               progress=not args.quiet, only=args.only,
                                                               batch_runs=args.batch_runs)]
    print(format_reports(reports))
    return 0 if all(r.ok for r in reports) else 1


def _cmd_notes(args: argparse.Namespace) -> int:
    from gradkit_tools import calnotes, clauses
    from gradkit_tools.course import ConfigError, assignments

    try:
        for a in assignments(args.course, args.names or None):
            changed = calnotes.write(a.notes_file, a.calibration_file) if a.calibration_file.is_file() else False
            changed = clauses.write(a.name) or changed
            print(f"{a.name}: {a.notes_file} {'updated' if changed else 'up to date'}")
    except (ConfigError, OSError) as exc:
        print(f"gradkit notes: {exc}", file=sys.stderr)
        return 1
    return 0


def _batch_runs_arg(p: argparse.ArgumentParser) -> None:
    from gradkit_tools.calibrate import BATCH_RUNS

    p.add_argument("--batch-runs", type=int, default=BATCH_RUNS, metavar="N",
                   help="seeds trained side by side in one model by the checks that can (the same values; "
                        "1: seed by seed)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep``, ``calibrate``, ``mutate`` and ``notes`` to the subcommands ``sub``."""
    p = sub.add_parser("sweep", help="run each stochastic hidden test's statistic with the reference under many seeds")
    p.add_argument("names", nargs="+", help="assignments")
    p.add_argument("--seeds", type=int, default=20, help="number of seeds")
    p.add_argument("--first-seed", type=int, default=1,
                   help="seed of the generator that draws the runs' seeds (gradkit_tools.calibrate.spread_seeds)")
    p.add_argument("--power-runs", type=int, default=0, help="runs per wrong answer (0: no power study)")
    p.add_argument("--min-margin", type=float, default=3.0,
                   help="exit 1 if an empirical bound's margin (in sd) is below this")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _batch_runs_arg(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("calibrate", help="calibrate the stochastic bounds: >= 300 reference runs, power, budget")
    p.add_argument("names", nargs="+", help="assignments")
    p.add_argument("--runs", type=int, default=300, help="reference runs per check (>= 300)")
    p.add_argument("--first-seed", type=int, default=10_000,
                   help="seed of the generator that draws the runs' seeds (gradkit_tools.calibrate.spread_seeds)")
    p.add_argument("--power-runs", type=int, default=30, help="runs per wrong answer")
    p.add_argument("--jobs", type=int, default=1, help="processes sharing the seeds (same numbers as one)")
    p.add_argument("--refit", action="store_true",
                   help="no new runs: recompute course/<name>/calibration.json's summaries from its stored runs")
    p.add_argument("--power-only", action="store_true",
                   help="keep the stored reference runs; run the power study again with answers.yml's wrong answers")
    p.add_argument("--only", type=lambda s: [t for t in s.split(",") if t], default=None, metavar="TEST[,TEST]",
                   help="calibrate only these hidden tests (new, or whose statistic changed) at the stored file's "
                        "seeds; keep the other tests' stored runs")
    slurm.add_calibrate_shard_args(p)
    p.add_argument("-o", "--out", default=None, help="JSON output (default course/<name>/calibration.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _batch_runs_arg(p)
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("mutate", help="mutation-test the hidden tests: every mutant of every solution stub, graded")
    p.add_argument("names", nargs="+", help="assignments")
    p.add_argument("--stub", action="append", default=None, help="only this stub's mutants (repeatable)")
    p.add_argument("--bands", action="store_true",
                   help="also run the banded tests on mutants the exact tests leave alive (trains networks)")
    p.add_argument("--write", action="store_true",
                   help="record the figures in course/<name>/mutation.json and NOTES.md's clause section")
    p.add_argument("--otter-sample", type=int, default=0, metavar="N",
                   help="also grade N killed and N equivalent mutants per stub with the real otter run and the "
                        "released zip; exit 1 if a verdict disagrees with the screen")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_mutate)

    p = sub.add_parser("notes", help="regenerate the generated sections of each NOTES.md: calibration (from "
                                     "calibration.json), clauses and mutation scores (clauses.yml, mutation.json)")
    p.add_argument("names", nargs="*", help="assignments (default: every one of the course)")
    p.add_argument("--course", default=None, help="course folder (default: the repository's course/)")
    p.set_defaults(func=_cmd_notes)
