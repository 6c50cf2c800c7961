"""The ``napari-dlmicro`` command: the same core jobs as the docks, headless.

Each subcommand lives in its own module with ``add_parser(subparsers)``;
its parser's ``run(args) -> int`` does the work. Bad input exits with status 2
and a one-line reason; Ctrl-C cancels the job and exits with 130.
"""
from __future__ import annotations

import argparse
import sys

from napari_dlmicro.cli import classify, denoise, evaluate, models, segment, train
from napari_dlmicro.core.errors import Cancelled, UserError

SUBCOMMANDS = (models, segment, denoise, train, evaluate, classify)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="napari-dlmicro",
        description="Deep learning for microscopy, headless: segment, denoise, train, evaluate, classify.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-dlmicro`` console script."""
    args = build_parser().parse_args(argv)  # bad flags: argparse prints the reason and exits with 2
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"napari-dlmicro {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print(f"napari-dlmicro {args.command}: cancelled; what was finished is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
