"""``gradkit`` command line: parses arguments and calls library functions.

No logic lives here: every subcommand maps its flags one-to-one onto a
library function's keyword arguments, with the same defaults.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _cmd_collapse(args: argparse.Namespace) -> int:
    from gradkit.ensemble import collapse_rate

    for activation in args.activation:
        result = collapse_rate(
            activation,
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
