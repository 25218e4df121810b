"""Helpers shared by subcommands: dates, output files, reporting input problems."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from fhir3t.cli.parser import TYPE_ERRORS, prefixed
from fhir3t.dates import parse_day
from fhir3t.errors import Problems
from fhir3t.messages import Message, Plural, render, table

T = TypeVar("T")

if TYPE_CHECKING:
    from fhir3t.pipeline import Definition
#: processes a run may start (--jobs): more than any machine fhir3t runs on repays, few enough to start
MAX_JOBS = 64
#: requests in flight to one server (--parallel)
MAX_PARALLEL = 64


W = {**TYPE_ERRORS, **table("cli.common", {
    "skipped": "skipped: {problem}",
    "note": "note: {problem}",
})}
MORE_PROBLEMS = Plural("cli.more-problems", "... and {n} more input problem", "... and {n} more input problems")


def day(value: str) -> date:
    """argparse type for YYYY-MM-DD."""
    try:
        return parse_day(value)
    except ValueError:
        raise argparse.ArgumentTypeError(render(W["day"](value=repr(value)))) from None


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """argparse type for a whole number in [low, high] (a config file's value is checked the same way)."""
    def convert(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(render(W["whole"](value=repr(value)))) from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(render(W["range"](low=low, high=high, n=n)))
        return n
    convert.__name__ = "whole_number"  # what argparse names the type in its own errors
    return convert


def positive_seconds(value: str) -> float:
    """argparse type for a number of seconds above 0 (finite)."""
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(render(W["seconds"](value=repr(value)))) from None
    if not 0 < n < 1e9:
        raise argparse.ArgumentTypeError(render(W["seconds-above"](value=value)))
    return n


@contextmanager
def output(path: str | None) -> Iterator[IO[str]]:
    """stdout, or a file written atomically (a half-written report is never left behind)."""
    if not path or path == "-":
        yield sys.stdout
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.part")
    with tmp.open("w", encoding="utf-8") as fh:
        yield fh
    tmp.replace(target)


def report_problems(problems: Problems, limit: int = 50, args: argparse.Namespace | None = None) -> None:
    """Print input problems on stderr: file, entry/line and what was skipped. Never patient data. In the run's
    language (`args`), except in JSON log mode (English)."""
    from fhir3t.cli.words import stderr_lang

    lang = stderr_lang(args) if args is not None else "en"
    items = list(problems)
    for p in items[:limit]:
        line = W["skipped" if p.skipped else "note"](problem=p.text(lang))
        print(prefixed("fhir3t", render(line, lang), lang), file=sys.stderr)
    if len(items) > limit:
        print(prefixed("fhir3t", render(MORE_PROBLEMS(len(items) - limit), lang), lang), file=sys.stderr)


@contextmanager
def progress_bar(enabled: bool, description: Plural | Message,
                 args: argparse.Namespace | None = None) -> Iterator[Callable[[Iterable[T]], Iterator[T]]]:
    """A counting spinner on stderr for long runs ({n} counts); silent when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda it: iter(it)
        return
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    lang = getattr(args, "lang", "en")

    def text(n: int) -> str:
        return escape(render(description(n) if isinstance(description, Plural) else description(n=n), lang))

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task(text(0), total=None)

        def tick(it: Iterable[T]) -> Iterator[T]:
            for n, item in enumerate(it, 1):
                if n % 25 == 0 or n < 25:
                    progress.update(task, description=text(n))
                yield item

        yield tick


def load_definition(args: argparse.Namespace, concept_maps: Iterable[str | Path] | None = None,
                    criteria: str | Path | None = None) -> Definition:
    """The study's Definition for a command: its --profiles folder, ConceptMaps and --criteria file."""
    from fhir3t.pipeline import Definition

    maps = list(getattr(args, "concept_map", None) or []) if concept_maps is None else list(concept_maps)
    return Definition.load(getattr(args, "profiles", None), maps,
                           criteria if criteria is not None else getattr(args, "criteria", None))
