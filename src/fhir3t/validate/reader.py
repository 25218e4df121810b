"""Reading what `fhir3t validate` is given: JSON or XML files (a resource or Bundle), NDJSON, gzip.

XML goes through fhir3t.fhirxml, the one XML reader (hardened against entity expansion and external
entities), and comes out in the JSON shape; its FHIR XML problems become issues of the file. A UTF-8
byte-order mark before JSON is skipped (RFC 8259 lets a parser ignore it).

Bounded memory: a whole-document JSON file over `max_bytes` is refused with a fatal issue instead
of being read; NDJSON is streamed line by line (one over-long line is skipped, not read whole).
Every problem becomes an Issue naming the file (and line), never a traceback.
"""
from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from fhir3t import fhirxml
from fhir3t.messages import Msg, table
from fhir3t.validate.issues import Issue

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
_NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
_FILE_SUFFIXES = (".json", ".json.gz") + fhirxml.XML_SUFFIXES + _NDJSON_SUFFIXES
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20

#: what is wrong with a file or a line before any resource is checked (the OS's and parsers' own English passed on)
MESSAGES = table("validate.read", {
    "empty-directory": "directory holds no .json, .xml or .ndjson files",
    "missing": "no such file or directory",
    "empty": "empty file (expected a FHIR resource or Bundle)",
    "too-large": "file is {size} bytes, over the limit of {limit} bytes for a single JSON document; not read (write it "
                 "as NDJSON, which is streamed, or raise --max-bytes)",
    "gzip-corrupt": "truncated or corrupt gzip data: {error}",
    "decompressed-too-large": "decompressed content is over the limit of {limit} bytes; not read",
    "comments": "the file has comments (// or /* */), which JSON does not allow; they were ignored",
    "not-json": "not valid JSON: {error}",
    "json-error": "{error} (line {line}, column {column})",
    "line-too-long": "line is over the limit of {limit} bytes; skipped",
    "breaks": "input ends or breaks after line {line}: {error}",
    "empty-ndjson": "empty file (expected one FHIR resource per line)",
    "bad-gzip": "not a valid gzip file ({error})",
    "gzip-truncated": "truncated gzip data (compressed file ended before the end-of-stream marker)",
})

#: what the reader yields: (source label, parsed JSON) or an Issue about the input itself
Item = tuple[str, Any] | Issue


def expand_paths(paths: list[str | os.PathLike]) -> Iterator[Path | Issue]:
    """Files to read: directories give their *.json / *.ndjson(.gz) files, sorted."""
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(_FILE_SUFFIXES))
            if not files:
                yield Issue("warning", "not-found", MESSAGES["empty-directory"](), source=str(p))
            yield from files
        elif p.exists():
            yield p
        else:
            yield Issue("fatal", "not-found", MESSAGES["missing"](), source=str(p))


def read_items(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[Item]:
    """Parsed JSON values found in one file, each with its source label (`file` or `file:line`)."""
    name = path.name.lower()
    src = str(path)
    try:
        if name.endswith(_NDJSON_SUFFIXES):
            yield from _read_ndjson(path, max_bytes)
            return
        size = path.stat().st_size
        if size == 0:
            yield Issue("fatal", "structure", MESSAGES["empty"](), source=src)
            return
        if size > max_bytes and not name.endswith(".gz"):
            yield Issue("fatal", "too-costly",
                        MESSAGES["too-large"](size=f"{size:,}", limit=f"{max_bytes:,}"),
                        source=src)
            return
        data = _read_limited(path, max_bytes)
    except OSError as exc:  # unreadable, truncated/corrupt gzip, ...
        yield Issue("fatal", "exception", _io_message(exc), source=src)
        return
    except (EOFError, zlib.error) as exc:
        yield Issue("fatal", "exception", MESSAGES["gzip-corrupt"](error=str(exc)), source=src)
        return
    if data is None:
        yield Issue("fatal", "too-costly",
                    MESSAGES["decompressed-too-large"](limit=f"{max_bytes:,}"), source=src)
        return
    if not data.strip():
        yield Issue("fatal", "structure", MESSAGES["empty"](), source=src)
        return
    if fhirxml.looks_like_xml(name):
        yield from _read_xml(data, src)
        return
    data = data.removeprefix(_BOM)
    try:
        yield src, orjson.loads(data)
        return
    except orjson.JSONDecodeError as exc:
        first_error = exc
    stripped = strip_comments(data)
    if stripped is not None:
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
        else:
            yield Issue("warning", "structure", MESSAGES["comments"](), source=src)
            yield src, obj
            return
    # Several JSON objects on separate lines in a .json file: NDJSON under a .json name.
    lines = data.split(b"\n")
    if len(lines) > 1:
        try:
            orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            pass
        else:
            yield from _parse_lines(enumerate(lines, 1), src)
            return
    yield Issue("fatal", "structure", MESSAGES["not-json"](error=_json_message(first_error)), source=src)


def _read_xml(data: bytes, src: str) -> Iterator[Item]:
    try:
        obj, problems = fhirxml.parse(data)
    except fhirxml.XmlRefused as exc:
        yield Issue("fatal", "structure", exc.msg, source=src)
        return
    for p in problems:
        yield Issue("error", "structure", p.msg, p.where, source=src)
    yield src, obj


def strip_comments(data: bytes) -> bytes | None:
    """`data` without // and /* */ comments outside strings; None when it has none."""
    out = bytearray()
    i, n, in_str, found = 0, len(data), False, False
    while i < n:
        c = data[i]
        if in_str:
            out.append(c)
            if c == 0x5C and i + 1 < n:  # backslash: keep the escaped character
                out.append(data[i + 1])
                i += 1
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
            out.append(c)
        elif data.startswith(b"//", i):
            found = True
            end = data.find(b"\n", i)
            i = n if end < 0 else end
            continue
        elif data.startswith(b"/*", i):
            found = True
            end = data.find(b"*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(c)
        i += 1
    return bytes(out) if found else None


def _read_limited(path: Path, max_bytes: int) -> bytes | None:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def _read_ndjson(path: Path, max_bytes: int) -> Iterator[Item]:
    src = str(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    lineno = 0
    seen_any = False
    try:
        with opener(path, "rb") as fh:
            for lineno, line in _lines(fh, max_bytes):
                if line is None:
                    yield Issue("error", "too-costly", MESSAGES["line-too-long"](limit=f"{max_bytes:,}"),
                                source=f"{src}:{lineno}")
                    seen_any = True
                    continue
                if line.strip():
                    seen_any = True
                    yield from _parse_lines([(lineno, line)], src)
    except (OSError, EOFError, zlib.error) as exc:
        yield Issue("fatal", "exception",
                    MESSAGES["breaks"](line=lineno, error=_io_message(exc)), source=src)
        return
    if not seen_any:
        yield Issue("fatal", "structure", MESSAGES["empty-ndjson"](), source=src)


def _lines(fh: Any, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """Lines of a binary stream; a line longer than max_bytes is yielded as None and skipped
    in chunks, so it is never held in memory whole."""
    lineno = 0
    while True:
        line = fh.readline(max_bytes + 1)
        if not line:
            return
        lineno += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while True:  # drain the rest of the over-long line
                rest = fh.readline(_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
            yield lineno, None
            continue
        yield lineno, line


def _parse_lines(lines: Any, src: str) -> Iterator[Item]:
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            yield f"{src}:{lineno}", orjson.loads(line.removeprefix(_BOM) if lineno == 1 else line)
        except orjson.JSONDecodeError as exc:
            yield Issue("error", "structure", MESSAGES["not-json"](error=_json_message(exc)), source=f"{src}:{lineno}")


def _json_message(exc: orjson.JSONDecodeError) -> Msg | str:
    msg = getattr(exc, "msg", None) or str(exc)
    lineno, colno = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    return MESSAGES["json-error"](error=msg, line=str(lineno), column=str(colno)) if lineno else msg


def _io_message(exc: BaseException) -> Msg | str:
    if isinstance(exc, gzip.BadGzipFile):
        return MESSAGES["bad-gzip"](error=str(exc))
    if isinstance(exc, EOFError):
        return MESSAGES["gzip-truncated"]()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
