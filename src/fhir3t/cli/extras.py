"""Optional dependencies: which extra provides which module, and the one sentence a command says when one is missing.

A command reachable from `fhir3t --help` never ends in "internal error" (exit 70) for want of a package: it
says which extra to install and exits 2. Commands call `require(extra, command)` before the first import of
the extra's modules; `missing_extra_message` is the safety net for an import failing deeper down (fhir3t.cli
turns a ModuleNotFoundError of a module listed here into that sentence).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from fhir3t.errors import UsageError


@dataclass(frozen=True)
class Extra:
    modules: tuple[str, ...]  # top-level import names
    packages: str  # as a person reads them
    purpose: str


#: extra name (pyproject's [project.optional-dependencies]) -> what it provides
EXTRAS: dict[str, Extra] = {
    # in the default install since issue 26; the extra is kept for older instructions and a trimmed install
    "service": Extra(("starlette", "uvicorn"), "Starlette and uvicorn", "the HTTP service"),
    "native": Extra(("duckdb",), "DuckDB", "the native first pass over NDJSON (--native on)"),
}

#: subcommand -> the extras it needs to run (its --help needs none); tests run each without them
COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("service",),
    "watch": ("service",),
}

MESSAGES = {
    "missing-extra": 'needs {packages} for {purpose}, which are not installed: pip install "fhir3t[{extra}]"',
}


def missing(extra: str) -> list[str]:
    """The extra's modules that cannot be imported here."""
    return [m for m in EXTRAS[extra].modules if importlib.util.find_spec(m) is None]


def message(extra: str) -> str:
    e = EXTRAS[extra]
    return MESSAGES["missing-extra"].format(packages=e.packages, purpose=e.purpose, extra=extra)


def require(extra: str) -> None:
    """Raise the one-sentence UsageError (exit 2) when a module of `extra` is missing."""
    if missing(extra):
        raise UsageError(message(extra))


def missing_extra_message(module: str | None) -> str | None:
    """The sentence for a ModuleNotFoundError of `module` (e.g. 'uvicorn.config'), if an extra provides it."""
    top = (module or "").split(".", 1)[0]
    for name, e in EXTRAS.items():
        if top in e.modules:
            return message(name)
    return None


__all__ = ["COMMAND_EXTRAS", "EXTRAS", "MESSAGES", "Extra", "message", "missing", "missing_extra_message", "require"]
