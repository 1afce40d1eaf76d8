"""``python -m tconv``: the command-line entry point.

Each sub-command lives in its own module and registers itself here through ``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from . import bench, checkerboard_cmd, demo

# name -> (help text, add-arguments function, run function)
_COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "demo": (demo.HELP, demo.add_arguments, demo.run),
    "bench": (bench.HELP, bench.add_arguments, bench.run),
    "checkerboard": (checkerboard_cmd.HELP, checkerboard_cmd.add_arguments, checkerboard_cmd.run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tconv",
        description="tconv: fast, exact transposed convolution, and the mathematics made concrete.",
        epilog="Run 'python -m tconv COMMAND --help' for the options of one command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, _) in _COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return _COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
