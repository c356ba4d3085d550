"""The ``graphspec`` command: a thin layer over the public API, one module per command.

Exit status: 0 success; 1 a problem with the input (a spec, data, a checkpoint: printed as
``file:line:col: error: ...``) or a failed check; 2 a wrong command line; 70 an internal
error (a bug in graphspec); 130 interrupted (Ctrl-C).  ``train`` stopped by SIGINT or SIGTERM
saves a checkpoint first and exits 128 + the signal number (130, 143).  No traceback is
printed unless ``--debug``.  ``diff`` follows diff(1) instead: 0 equivalent, 1 different,
2 when it cannot compare (graphspec.cli.diff).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from graphspec import __version__
from graphspec.cli import (
    compile,
    diff,
    evaluate,
    export,
    import_onnx,
    inspect,
    ops,
    predict,
    report,
    sample,
    schema,
    sweep,
    train,
    upgrade,
    validate,
    verify,
)
from graphspec.cli.common import eprint
from graphspec.errors import GraphspecError, UsageError

COMMANDS = (
    validate,
    inspect,
    diff,
    schema,
    ops,
    compile,
    train,
    verify,
    export,
    import_onnx,
    report,
    predict,
    evaluate,
    sample,
    sweep,
    upgrade,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises instead of exiting, so main() decides the exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"'{self.prog} --help' shows the usage")


def make_parser() -> argparse.ArgumentParser:

    # --debug is accepted before and after the command name.
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser = _Parser(
        prog="graphspec",
        description="A declarative graph-spec compiler for neural networks: "
        "YAML in, checked NumPy and PyTorch programs out.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"graphspec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(sub, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        parser = make_parser()
        args = parser.parse_args(args_list)
        args.debug = getattr(args, "debug", False)
        if getattr(args, "run", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args.run(args))
    except SystemExit as e:  # --help and --version exit through argparse
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    except UsageError as e:
        if debug:
            raise
        eprint(f"graphspec: {e.render()}")
        return EXIT_USAGE
    except GraphspecError as e:
        if debug:
            raise
        eprint(e.render())
        return EXIT_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        eprint("graphspec: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``graphspec ops | head``): not an error worth a message.
        _silence_stdout()
        return EXIT_OK
    except Exception as e:
        if debug:
            raise
        eprint(
            f"graphspec: internal error: {type(e).__name__}: {e}\n"
            "This is a bug in graphspec. Please report it with the spec and the command line; "
            "rerun with --debug for the traceback."
        )
        return EXIT_INTERNAL


def _silence_stdout() -> None:

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


__all__ = ["main", "make_parser"]
