"""The ``napari-dlmicro`` command: the same core jobs as the docks, headless.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``. Bad input exits non-zero with a one-line reason.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..core.errors import Cancelled, UserError

COMMANDS = ("models", "segment", "denoise", "train", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="napari-dlmicro",
        description="Deep learning for microscopy, headless: segment, denoise, train, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # subcommand not part of this build
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-dlmicro`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"napari-dlmicro {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Cancelled:
        print(f"napari-dlmicro {args.command}: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"napari-dlmicro {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
