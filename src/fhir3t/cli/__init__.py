"""The `fhir3t` command: one sub-module per subcommand, each with `add_parser` and `run`.

Subcommands only parse options, call the library and map errors to exit codes
(see fhir3t.errors); the logic lives in the library so the Python API behaves the same.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from fhir3t import __version__
from fhir3t.errors import EXIT_INTERNAL, EXIT_USAGE, Fhir3tError

#: subcommand name -> module under fhir3t.cli (imported lazily so `--help` stays fast)
COMMANDS: dict[str, str] = {
    "screen": "screen",
    "validate": "validate",
}


def _optional_commands() -> dict[str, str]:
    """Subcommands whose module may not exist yet in a partial checkout."""
    out = {}
    for name, mod in {"push": "push", "export": "export", "safety": "safety", "report": "report"}.items():
        if importlib.util.find_spec(f"fhir3t.cli.{mod}") is not None:
            out[name] = mod
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fhir3t",
        description=(
            "FHIR R4 adapter for trial NCT06438679 (3T therapy in MDA5+ dermatomyositis): "
            "screen patients against the trial's 22 criteria, emit ResearchSubjects and "
            "AdverseEvents, validate Bundles, talk to a FHIR server."
        ),
        epilog=(
            "Exit codes: 0 ok; 1 validation errors found; 2 usage error; 3 some input skipped; "
            "4 no usable input or bad configuration data; 5 FHIR server error; 6 auth error; "
            "7 push partly failed."
        ),
    )
    parser.add_argument("--version", action="version", version=f"fhir3t {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="more log output on stderr (-v info, -vv debug); patient data is never logged",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, mod in {**COMMANDS, **_optional_commands()}.items():
        module = importlib.import_module(f"fhir3t.cli.{mod}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except Fhir3tError as exc:
        print(f"fhir3t {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fhir3t: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # a bug: say so plainly, keep the traceback for -vv
        logging.getLogger("fhir3t").debug("internal error", exc_info=True)
        print(
            f"fhir3t {args.command}: internal error (a bug in fhir3t); rerun with -vv for details",
            file=sys.stderr,
        )
        if args.verbose >= 2:
            raise
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
