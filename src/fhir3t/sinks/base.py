"""Where emitted Bundles go: the Sink interface, and writing files atomically.

A Sink takes a transaction Bundle and says what became of it. `FileSink` writes it to a file
(atomically: a half-written Bundle is never left behind, and a failed write leaves no `.part`);
`FhirServerSink` (fhir_server.py) pushes it, entry by entry.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import orjson


class Sink(Protocol):
    """Send one Bundle; return a report the caller can print and turn into an exit code."""

    def send(self, bundle: dict[str, Any]) -> Any: ...


@contextlib.contextmanager
def atomic_text(path: str | Path, *, bom: bool = False, private: bool = False) -> Iterator[IO[str]]:
    """A text file written to a `.part` beside the target and renamed over it only when complete; `private`:
    readable and writable by its owner only (0600, from its creation: never a moment world-readable)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.part")
    if private:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # a .part left by someone else must not lend us its mode
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fh = os.fdopen(fd, "w", encoding="utf-8-sig" if bom else "utf-8", newline="")
    else:
        fh = tmp.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="")
    try:
        yield fh
        fh.close()
        os.replace(tmp, target)
    except BaseException:
        fh.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(obj: object, path: str | Path, *, private: bool = False) -> None:
    """Write JSON atomically (never a half-written Bundle); `private`: mode 0600."""
    with atomic_text(path, private=private) as fh:
        fh.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


class FileSink:
    """Writes the Bundle to a file (for `fhir3t push` later, or another tool)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def send(self, bundle: dict[str, Any]) -> Path:
        write_json(bundle, self.path)
        return self.path
