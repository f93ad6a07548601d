"""``gradkit slurm grade|calibrate``: one batch on a Slurm cluster, a shard per array task, then a merge.

:func:`write_grade` and :func:`write_calibrate` write into the output folder a job-array script (task K
of N runs ``gradkit grade ... --shard K/N`` or ``gradkit calibrate ... --shard K/N``; K is
``SLURM_ARRAY_TASK_ID``), a merge script (``gradkit merge`` or ``gradkit calibrate --merge``) and
``submit.sh``, which submits the array and then the merge with ``--dependency=afterok:<array job>``.
:func:`submit` does what ``submit.sh`` does and returns the two job ids. Every script calls the Python
that wrote it (``sys.executable -m gradkit_tools.cli``) with absolute paths, so a cluster whose nodes
share this filesystem runs the same gradkit. The shard and merge command lines are shared with
:mod:`gradkit_tools.k8s`.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Sequence

__all__ = ["SlurmError", "Resources", "Batch", "grade_lines", "calibrate_lines", "write_grade", "write_calibrate",
           "submit", "add_parser", "add_sharding_args", "add_calibrate_shard_args",
           "calibrate_parts"]


class SlurmError(RuntimeError):
    """Bad input to ``gradkit slurm``, or ``sbatch`` missing or refusing a script (the message says which)."""


@dataclass
class Resources:
    """What each job asks Slurm for; None leaves the cluster's default (no ``#SBATCH`` line)."""

    partition: str | None = None
    time: str | None = None  # per array task, Slurm's syntax: "30", "2:00:00", "1-0"
    cpus_per_task: int | None = None
    mem: str | None = None  # per node, Slurm's syntax: "8G"
    sbatch_lines: Sequence[str] = field(default_factory=tuple)  # extra lines: "--qos=short" or "#SBATCH --qos=short"

    def lines(self, merge: bool = False) -> list[str]:
        """``#SBATCH`` lines (``merge``: the merge job's, without the per-task CPUs and memory)."""
        opts = [("partition", self.partition), ("time", self.time)]
        if not merge:
            opts += [("cpus-per-task", self.cpus_per_task), ("mem", self.mem)]
        out = [f"#SBATCH --{k}={v}" for k, v in opts if v is not None]
        for line in self.sbatch_lines:
            line = line.strip().removeprefix("#SBATCH").strip()
            out.append(f"#SBATCH {line if line.startswith('-') else '--' + line}")
        return out


@dataclass
class Batch:
    """The files of one sharded batch: scripts, logs, and the merged result the merge job writes."""

    folder: Path
    array: Path
    merge: Path
    submit: Path
    result: Path
    tasks: int


def _q(x: object) -> str:
    return shlex.quote(str(x))


def grade_lines(autograder: str, submissions: Sequence[str], out: str, tasks: int, *, python: Sequence[str],
                jobs: int | None = None, timeout_s: float | None = None, memory_mb: int | None = None,
                sandbox_mode: str = "bwrap", course: str | None = None, force: bool = False) -> tuple[str, str]:
    """``(shard, merge)``: the shell lines of shard ``$K`` (``gradkit grade ... --shard $K/tasks`` into
    ``out/shards/$K``) and of the merge into ``out/final_grades.csv``. Paths are used as given."""
    cli = " ".join(map(_q, python))
    opts = [("--jobs", jobs), ("--timeout", timeout_s), ("--memory-mb", memory_mb), ("--course", course)]
    extra = "".join(f" {k} {_q(v)}" for k, v in opts if v is not None) + (" --force" if force else "")
    shard = (f"{cli} grade {_q(autograder)} {' '.join(map(_q, submissions))} -o {_q(out + '/shards/')}\"$K\" "
             f"--shard \"$K\"/{tasks} --sandbox {_q(sandbox_mode)} --quiet{extra}")
    csvs = " ".join(_q(f"{out}/shards/{k}/final_grades.csv") for k in range(1, tasks + 1))
    return shard, f"{cli} merge {csvs} -o {_q(out + '/final_grades.csv')}"


def calibrate_lines(name: str, out: str, tasks: int, *, python: Sequence[str], result: str, runs: int = 300,
                    first_seed: int = 10_000, power_runs: int = 30, only: Collection[str] | None = None
                    ) -> tuple[str, str]:
    """``(shard, merge)``: the shell lines of shard ``$K`` (``gradkit calibrate NAME --shard $K/tasks``
    into ``out/parts/$K.json``) and of the merge into ``result``. Paths are used as given."""
    cli = " ".join(map(_q, python))
    common = f"{_q(name)} --runs {runs} --first-seed {first_seed} --power-runs {power_runs}"
    common += f" --only {_q(','.join(only))}" if only else ""
    parts = " ".join(_q(f"{out}/parts/{k}.json") for k in range(1, tasks + 1))
    return (f"{cli} calibrate {common} --shard \"$K\"/{tasks} -o {_q(out + '/parts/')}\"$K\".json --quiet",
            f"{cli} calibrate {_q(name)} --merge {parts} -o {_q(result)}")


def _write(out: Path, label: str, tasks: int, shard: str, merge: str, res: Resources, result: Path) -> Batch:
    if tasks < 1:
        raise SlurmError(f"--tasks must be >= 1, got {tasks}")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    head = ["#!/bin/bash", f"#SBATCH --job-name=gradkit-{label}"]
    body = ["set -euo pipefail", f"cd {_q(Path.cwd())}", 'export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"']
    array = out / f"{label}-array.sbatch"
    array.write_text("\n".join([*head, f"#SBATCH --array=1-{tasks}",
                                f"#SBATCH --output={out}/logs/{label}-%a.out", *res.lines(), "", *body,
                                "K=${SLURM_ARRAY_TASK_ID:?run this script with sbatch (it is a job array)}",
                                f"exec {shard}", ""]))
    merge_script = out / f"{label}-merge.sbatch"
    merge_script.write_text("\n".join([head[0], f"{head[1]}-merge", f"#SBATCH --output={out}/logs/{label}-merge.out",
                                       "#SBATCH --kill-on-invalid-dep=yes", *res.lines(merge=True), "", *body,
                                       f"exec {merge}", ""]))
    sub = out / "submit.sh"
    sub.write_text("\n".join([
        "#!/bin/bash", f"# the {tasks} shards of gradkit {label} as a Slurm job array, then their merge",
        "set -euo pipefail",
        f"array=$(sbatch --parsable {_q(array)})", "array=${array%%;*}",
        f"merge=$(sbatch --parsable --dependency=afterok:$array {_q(merge_script)})",
        'echo "array job $array, merge job ${merge%%;*}"', f"echo 'result: {result}'", ""]))
    for f in (array, merge_script, sub):
        f.chmod(0o755)
    return Batch(out, array, merge_script, sub, result, tasks)


def write_grade(autograder: str | Path, submissions: Sequence[str | Path], out: str | Path, tasks: int, *,
                resources: Resources | None = None, **grade_options) -> Batch:
    """Write the scripts of ``gradkit grade`` in ``tasks`` shards into ``out`` (``grade_options``: those of
    :func:`grade_lines`); the merge writes ``out/final_grades.csv``, shard K's folder is ``out/shards/K``."""
    from gradkit_tools.grade import GradeError, collect_submissions, resolve_autograder

    try:
        zip_path = resolve_autograder(autograder, grade_options.get("course"))
        if not collect_submissions(submissions):
            raise GradeError(f"no submission (.ipynb/.zip) in {', '.join(map(str, submissions))}")
    except GradeError as exc:
        raise SlurmError(str(exc)) from None
    out = Path(out).resolve()
    if grade_options.get("course") is not None:
        grade_options["course"] = str(Path(grade_options["course"]).resolve())
    shard, merge = grade_lines(str(zip_path.resolve()), [str(Path(s).resolve()) for s in submissions], str(out),
                               tasks, python=[sys.executable, "-m", "gradkit_tools.cli"], **grade_options)
    return _write(out, "grade", tasks, shard, merge, resources or Resources(), out / "final_grades.csv")


def write_calibrate(name: str, out: str | Path, tasks: int, *, result: str | Path | None = None,
                    resources: Resources | None = None, **calibrate_options) -> Batch:
    """Write the scripts of ``gradkit calibrate NAME`` in ``tasks`` shards into ``out``; the merge writes
    ``result`` (default ``out/calibration.json``; ``course/<name>/calibration.json`` replaces the committed
    file as ``gradkit calibrate`` does). ``calibrate_options``: those of :func:`calibrate_lines`."""
    from gradkit_tools.course import ConfigError, assignment

    try:
        assignment(name)
    except ConfigError as exc:
        raise SlurmError(str(exc)) from None
    out = Path(out).resolve()
    result = Path(result).resolve() if result is not None else out / "calibration.json"
    shard, merge = calibrate_lines(name, str(out), tasks, python=[sys.executable, "-m", "gradkit_tools.cli"],
                                   result=str(result), **calibrate_options)
    return _write(out, "calibrate", tasks, shard, merge, resources or Resources(), result)


def submit(batch: Batch) -> tuple[str, str]:
    """Submit ``batch``'s array and its merge (``afterok`` on the whole array): ``(array id, merge id)``."""
    if shutil.which("sbatch") is None:
        raise SlurmError(f"sbatch not found on PATH (not a Slurm login node?); the scripts are in {batch.folder}: "
                         f"use --dry-run to only write them, and `bash {batch.submit}` where sbatch is")

    def sbatch(*args: str) -> str:
        done = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise SlurmError(f"sbatch {' '.join(args)} failed ({done.returncode}): "
                             f"{(done.stderr or done.stdout).strip()}")
        return done.stdout.strip().split(";")[0]

    array = sbatch(str(batch.array))
    return array, sbatch(f"--dependency=afterok:{array}", str(batch.merge))


def _report(batch: Batch, dry_run: bool) -> int:
    if dry_run:
        print(f"wrote {batch.array.name}, {batch.merge.name} and submit.sh in {batch.folder}; "
              f"submit with: bash {batch.submit}")
        return 0
    array, merge = submit(batch)
    print(f"submitted array job {array} ({batch.tasks} tasks) and merge job {merge} (afterok:{array})\n"
          f"logs: {batch.folder / 'logs'}; result: {batch.result}")
    return 0


def _cmd(args: argparse.Namespace) -> int:
    res = Resources(args.partition, args.time, args.cpus_per_task, args.mem, tuple(args.sbatch or ()))
    try:
        if args.what == "grade":
            batch = write_grade(args.autograder, args.submissions, args.out, args.tasks, resources=res,
                                jobs=args.jobs, timeout_s=args.timeout, memory_mb=args.memory_mb,
                                sandbox_mode=args.sandbox, course=args.course, force=args.force)
        else:
            batch = write_calibrate(args.name, args.out, args.tasks, result=args.calibration, resources=res,
                                    runs=args.runs, first_seed=args.first_seed, power_runs=args.power_runs,
                                    only=args.only)
        return _report(batch, args.dry_run)
    except SlurmError as exc:
        print(f"gradkit slurm {args.what}: {exc}", file=sys.stderr)
        return 1


def add_sharding_args(p: argparse.ArgumentParser, what: str) -> None:
    """The arguments of ``gradkit slurm|k8s grade|calibrate`` besides the resources (``what``: the subcommand)."""
    from gradkit_tools.sandbox import MODES

    if what == "grade":
        p.add_argument("autograder", help="autograder.zip, its folder, or an assignment name")
        p.add_argument("submissions", nargs="+", help=".ipynb/.zip submissions or folders holding them")
        p.add_argument("--jobs", type=int, default=None, help="parallel submissions per task (default: its cores)")
        p.add_argument("--timeout", type=float, default=None, help="seconds per submission (default: grading.yml)")
        p.add_argument("--memory-mb", type=int, default=None, help="address-space limit in MB (default: grading.yml)")
        p.add_argument("--sandbox", choices=MODES, default="bwrap", help="as `gradkit grade --sandbox`")
        p.add_argument("--course", default=None, help="course folder (default: the repository's course/)")
        p.add_argument("--force", action="store_true", help="regrade submissions already graded")
    else:
        p.add_argument("name", help="assignment")
        p.add_argument("--runs", type=int, default=300, help="reference runs per check (>= 300)")
        p.add_argument("--first-seed", type=int, default=10_000, help="as `gradkit calibrate --first-seed`")
        p.add_argument("--power-runs", type=int, default=30, help="runs per wrong answer")
        p.add_argument("--only", type=lambda s: [t for t in s.split(",") if t], default=None,
                       metavar="TEST[,TEST]", help="as `gradkit calibrate --only`")
        p.add_argument("--calibration", default=None,
                       help="where the merge writes the calibration (default <out>/calibration.json)")
    p.add_argument("-o", "--out", required=True, help="folder of the shards' output (and of the Slurm scripts, logs)")
    p.add_argument("--tasks", type=int, required=True, help="shards: array tasks")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``gradkit slurm grade|calibrate`` on the subcommands ``sub`` of :func:`gradkit_tools.cli.build_parser`."""
    top = sub.add_parser("slurm", help="grade or calibrate as a Slurm job array (a shard per task) and a merge job")
    kinds = top.add_subparsers(dest="what", required=True)
    for what, text in (("grade", "`gradkit grade` in --tasks shards, then `gradkit merge`"),
                       ("calibrate", "`gradkit calibrate NAME` in --tasks shards of its seeds, then --merge")):
        p = kinds.add_parser(what, help=text)
        add_sharding_args(p, what)
        p.add_argument("--partition", default=None, help="#SBATCH --partition (default: the cluster's)")
        p.add_argument("--time", default=None, help="time limit per task, e.g. 2:00:00 (default: the partition's)")
        p.add_argument("--cpus-per-task", type=int, default=None, help="#SBATCH --cpus-per-task (default: 1)")
        p.add_argument("--mem", default=None, help="memory per task, e.g. 16G (default: the cluster's)")
        p.add_argument("--sbatch", action="append", default=None, metavar="LINE",
                       help="extra #SBATCH line, e.g. --sbatch=--qos=short or --sbatch account=me (repeatable)")
        p.add_argument("--dry-run", action="store_true", help="write the scripts and submit.sh, submit nothing")
        p.set_defaults(func=_cmd)


def add_calibrate_shard_args(p: argparse.ArgumentParser) -> None:
    """``--shard`` and ``--merge`` of ``gradkit calibrate`` (handled by :func:`calibrate_parts`)."""
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="run only the K-th of N slices of the seeds (one process); -o names the part's JSON")
    p.add_argument("--merge", nargs="+", default=None, metavar="PART",
                   help="join the parts of --shard 1/N..N/N into -o, as one process would have written it")


def calibrate_parts(args: argparse.Namespace) -> int:
    """``gradkit calibrate NAME --shard K/N -o part.json`` and ``gradkit calibrate NAME --merge PART... [-o]``."""
    from gradkit_tools.calibrate import calibrate_shard, format_reports, merge_shards

    try:
        if args.shard and args.merge or args.refit or args.power_only:
            raise ValueError("--shard runs one part, --merge joins them: give one of the two, without --refit "
                             "or --power-only")
        if len(args.names) != 1:
            raise ValueError("--shard and --merge take one assignment")
        if args.shard:
            if not args.out:
                raise ValueError("--shard needs -o PART.json (the part's file, for --merge)")
            path = calibrate_shard(args.names[0], args.shard, args.out, args.runs, first_seed=args.first_seed,
                                   power_runs=args.power_runs, only=args.only)
            print(f"{args.names[0]} shard {args.shard} -> {path}")
            return 0
        reports = merge_shards(args.merge, args.out, name=args.names[0])
    except (ValueError, OSError) as exc:
        print(f"gradkit calibrate: {exc}", file=sys.stderr)
        return 1
    print(format_reports(reports))
    return 0 if all(r.ok for r in reports) else 1
