"""``gradkit k8s grade|calibrate``: the same sharded batch as :mod:`gradkit_tools.slurm`, as Kubernetes Jobs.

:func:`manifest` returns two ``batch/v1`` Jobs (YAML, ``kubectl apply -f``): an Indexed Job of
``tasks`` completions whose pod with ``JOB_COMPLETION_INDEX`` i runs shard K = i + 1 of the batch
(the shard lines of :func:`gradkit_tools.slurm.grade_lines` / :func:`~gradkit_tools.slurm.calibrate_lines`)
and then marks it done in ``<out>/done/K``, and a merge Job whose pod waits for the N marks and runs the
merge. Both mount one ReadWriteMany PersistentVolumeClaim (``--pvc``) at ``--mount``; the image is one
with gradkit installed (and the repository's course/ beside its sources); every path is a path inside
the container and is used as given.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

import yaml

from gradkit_tools.slurm import add_sharding_args, calibrate_lines, grade_lines

__all__ = ["manifest", "add_parser"]


def _pod(name: str, image: str, script: str, res: dict, pvc: str, mount: str, env: list[dict]) -> dict[str, Any]:
    container = {"name": name, "image": image, "command": ["/bin/sh", "-c", script], "env": env,
                 "volumeMounts": [{"name": "data", "mountPath": mount}]}
    if res:
        container["resources"] = {"requests": dict(res), "limits": dict(res)}
    return {"metadata": {"labels": {"app.kubernetes.io/name": "gradkit", "gradkit/job": name}},
            "spec": {"restartPolicy": "Never", "containers": [container],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": pvc}}]}}


def manifest(what: str, shard: str, merge: str, out: str, tasks: int, *, image: str, name: str | None = None,
             parallelism: int | None = None, pvc: str = "gradkit-data", mount: str = "/data",
             cpu: str | None = None, memory: str | None = None, backoff_limit: int = 6) -> list[dict]:
    """The Indexed Job of ``tasks`` shards running ``shard`` (a shell line using ``$K``) and the merge Job
    running ``merge`` once the ``tasks`` marks ``out/done/K`` exist (``what``: "grade" or "calibrate").

    ``parallelism``: pods at once (default ``tasks``); ``cpu``/``memory``: requests = limits of each
    shard's container (``"2"``, ``"8Gi"``; default none).
    """
    if tasks < 1:
        raise ValueError(f"tasks must be >= 1, got {tasks}")
    name = name or f"gradkit-{what}"
    env = [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}]
    res = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    done = shlex.quote(f"{out}/done")
    run = f'set -eu; K=$((JOB_COMPLETION_INDEX + 1)); mkdir -p {done}; rm -f {done}/"$K"; {shard}; touch {done}/"$K"'
    wait = f'set -eu; for k in $(seq 1 {tasks}); do until [ -e {done}/"$k" ]; do sleep 10; done; done; exec {merge}'
    labels = {"app.kubernetes.io/name": "gradkit"}
    shards = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
              "spec": {"completionMode": "Indexed", "completions": tasks,
                       "parallelism": min(parallelism or tasks, tasks), "backoffLimit": backoff_limit,
                       "template": _pod(name, image, run, res, pvc, mount, env)}}
    merged = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{name}-merge", "labels": labels},
              "spec": {"completions": 1, "parallelism": 1, "backoffLimit": backoff_limit,
                       "template": _pod(f"{name}-merge", image, wait, {}, pvc, mount, env)}}
    return [shards, merged]


def _cmd(args: argparse.Namespace) -> int:
    python = [args.python, "-m", "gradkit_tools.cli"]
    try:
        if args.what == "grade":
            shard, merge = grade_lines(args.autograder, args.submissions, args.out, args.tasks, python=python,
                                       jobs=args.jobs, timeout_s=args.timeout, memory_mb=args.memory_mb,
                                       sandbox_mode=args.sandbox, course=args.course, force=args.force)
        else:
            shard, merge = calibrate_lines(args.name, args.out, args.tasks, python=python,
                                           result=args.calibration or f"{args.out}/calibration.json",
                                           runs=args.runs, first_seed=args.first_seed, power_runs=args.power_runs,
                                           only=args.only)
        docs = manifest(args.what, shard, merge, args.out, args.tasks, image=args.image, name=args.name_prefix,
                        parallelism=args.parallelism, pvc=args.pvc, mount=args.mount, cpu=args.cpu,
                        memory=args.memory)
    except ValueError as exc:
        print(f"gradkit k8s {args.what}: {exc}", file=sys.stderr)
        return 1
    print(yaml.safe_dump_all(docs, sort_keys=False, width=1_000_000), end="")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``gradkit k8s grade|calibrate`` (prints the manifest) on the subcommands ``sub`` of the CLI."""
    top = sub.add_parser("k8s", help="print Kubernetes Jobs (YAML) that grade or calibrate in shards and merge")
    kinds = top.add_subparsers(dest="what", required=True)
    for what in ("grade", "calibrate"):
        p = kinds.add_parser(what, help=f"an Indexed Job of `gradkit {what}` shards and a merge Job, to stdout")
        add_sharding_args(p, what)
        p.add_argument("--image", required=True, help="container image with gradkit installed")
        p.add_argument("--name", dest="name_prefix", default=None, help=f"Job name (default gradkit-{what})")
        p.add_argument("--parallelism", type=int, default=None, help="pods at once (default: --tasks)")
        p.add_argument("--pvc", default="gradkit-data", help="ReadWriteMany PersistentVolumeClaim with the data")
        p.add_argument("--mount", default="/data", help="where the claim is mounted in the containers")
        p.add_argument("--python", default="python", help="the image's Python with gradkit")
        p.add_argument("--cpu", default=None, help="CPU request = limit of each shard, e.g. 2 (default: none)")
        p.add_argument("--memory", default=None, help="memory request = limit of each shard, e.g. 8Gi")
        p.set_defaults(func=_cmd)
