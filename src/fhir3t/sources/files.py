"""Read FHIR input files, bounded and without trusting them: Bundles / single resources (.json, or FHIR
XML .xml read by fhir3t.fhirxml into the same JSON shape) and Bulk Data NDJSON (.ndjson, .jsonl,
optionally .gz). A UTF-8 byte-order mark before JSON is skipped.

This module only turns files into (resource, where, fullUrl) entries and says what it had to skip;
grouping by patient is `sources.grouping`. Limits keep a hostile or broken file from taking the
machine: a JSON document over `max_file_bytes` (decompressed), an NDJSON line over `max_line_bytes`,
a FIFO or device given as a file are refused with a located problem, not read.
"""
from __future__ import annotations

import gzip
import io
import re
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from fhir3t import fhirxml
from fhir3t.errors import InputError, Problems
from fhir3t.messages import table

#: why the paths given cannot be read at all (the run stops)
E = table("input.paths", {
    "missing": "{path}: no such file or folder",
    "unreadable": "{path}: cannot be read ({why})",
    "not-regular": "{path}: not a regular file",
    "not-input": "{path}: not a .json, .xml, .ndjson or .ndjson.gz file",
})
#: what is said about input that is skipped or read in part (said in the reader's language, English in logs)
P = table("input.files", {
    "not-regular": "not a regular file (a pipe or device?); skipped",
    "too-big": "over the size limit of {mb} MB for one JSON document; file skipped (write it as NDJSON, which is "
               "streamed, or raise --max-file-mb)",
    "empty": "empty file; skipped",
    "bad-json-file": "not valid JSON (at line {line}, column {column}); file skipped",
    "not-utf8": "holds bytes that are not UTF-8: read with them replaced (a value holding one is read as no code, "
                "date or status)",
    "bad-json-line": "not valid JSON (at line {line}, column {column}); line skipped",
    "bad-json-truncated": "not valid JSON (the file ends mid-line: truncated?); line skipped",
    "unreadable": "cannot read file ({kind}); file skipped",
    "xml-refused": "{error}; file skipped",
    "long-line": "line over the limit of {mb} MB; skipped",
    "past-line": "cannot read the file past this line ({kind}); the rest of the file is missing",
    "no-type-line": "not a FHIR resource (no resourceType); line skipped",
    "no-type-file": "not a FHIR resource (no resourceType); file skipped",
    "entry-not-list": "Bundle.entry is not a list; file skipped",
    "entry-not-object": "Bundle entry is not an object; skipped",
    "entry-no-resource": "Bundle entry has no resource; skipped",
    "resource-no-type": "resource without resourceType; skipped",
    "nested": "nested Bundle is not read; skipped",
    "conceptmap": "ConceptMap found in the input: used to translate local codes",
})

#: whole documents (a Bundle or one resource), JSON or XML
JSON_SUFFIXES = (".json", ".json.gz") + fhirxml.XML_SUFFIXES
_BOM = b"\xef\xbb\xbf"
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")

DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Size caps on input (`--max-file-mb`, `--max-line-mb`)."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


_DEFAULT = Limits()


def _has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.name.lower().endswith(suffixes)


def expand_paths(paths: Iterable[str | Path], problems: Problems | None = None) -> tuple[list[Path], list[Path]]:
    """Split inputs into Bundle/resource JSON files and NDJSON files (folders searched recursively).

    A path that does not exist is an InputError (nothing to screen from it); a FIFO, device or socket
    is skipped with a problem (reading one would hang or never end).
    """
    json_files: list[Path] = []
    ndjson_files: list[Path] = []
    for p in paths:
        path = Path(p)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise InputError(E["missing"](path=str(path))) from None
        except OSError as exc:
            raise InputError(E["unreadable"](path=str(path), why=exc.strerror or "")) from None
        if stat.S_ISDIR(mode):
            candidates = sorted(x for x in path.rglob("*") if not x.is_dir())
        elif not stat.S_ISREG(mode):
            if problems is not None:
                problems.add(str(path), P["not-regular"]())
                continue
            raise InputError(E["not-regular"](path=str(path)))
        else:
            candidates = [path]
        for f in candidates:
            is_ndjson, is_json = _has_suffix(f, NDJSON_SUFFIXES), _has_suffix(f, JSON_SUFFIXES)
            if not (is_ndjson or is_json):
                if not stat.S_ISDIR(mode):
                    raise InputError(E["not-input"](path=str(f)))
                continue
            if f is not path:
                try:
                    if not stat.S_ISREG(f.stat().st_mode):
                        if problems is not None:
                            problems.add(str(f), P["not-regular"]())
                        continue
                except OSError:
                    continue
            (ndjson_files if is_ndjson else json_files).append(f)
    return json_files, ndjson_files


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_json_file(path: Path, problems: Problems, limits: Limits = _DEFAULT) -> object | None:
    """Parse a JSON or FHIR XML file (gz too) within the size limit; a problem, not an exception, when it
    cannot be. What breaks the FHIR XML rules is a problem of the file; the resource is still read, with
    the offending value kept as it was written, so the readers treat it as they treat a wrong JSON value."""
    where = str(path)
    try:
        with _open(path) as fh:
            data = fh.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:
            problems.add(where, P["too-big"](mb=limits.max_file_bytes // (1024 * 1024)))
            return None
        if not data.strip():
            problems.add(where, P["empty"]())
            return None
        if fhirxml.looks_like_xml(path.name):
            return _read_xml(data, where, problems)
        data = data.removeprefix(_BOM)
        wide = _wide_text(data)
        if wide is not None:  # UTF-16 / UTF-32 with its byte-order mark (Windows tools save JSON so): the same text
            data = wide.encode("utf-8")
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            text = data.decode("utf-8", "replace")
            if "\ufffd" not in text:
                raise
            obj = orjson.loads(text)  # bytes that are not UTF-8, replaced: a value holding one decides nothing
            problems.add(where, P["not-utf8"](), skipped=False)
            return obj
    except orjson.JSONDecodeError as exc:
        problems.add(where, P["bad-json-file"](line=exc.lineno, column=exc.colno))
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        problems.add(where, P["unreadable"](kind=type(exc).__name__))
    return None


_WIDE_BOMS = ((b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\xfe\xff", "utf-16-be"),
              (b"\xff\xfe", "utf-16-le"))


def _wide_text(data: bytes) -> str | None:
    """The text of a file written in UTF-16 or UTF-32 with its byte-order mark, or None (not such a file, or one
    whose bytes do not decode)."""
    for bom, codec in _WIDE_BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec)
            except UnicodeDecodeError:
                return None
    return None


#: the resource types a file names ('"resourceType": "Condition"'), read from its bytes when it cannot be parsed
_TYPES_IN = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]{1,64})"')


def types_in_unreadable(path: Path, limits: Limits = _DEFAULT) -> set[str] | None:
    """The resource types a file that could not be read as JSON names in its first bytes (those of a UTF-16 /
    UTF-32 file too): none for a blank file, None when its bytes cannot be read at all or name none (whatever it
    holds is unknown)."""
    try:
        with _open(path) as fh:
            data = fh.read(min(limits.max_file_bytes, 64 << 20))
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return None
    wide = _wide_text(data)
    if wide is None and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        wide = data[2:].decode("utf-16-le" if data[:2] == b"\xff\xfe" else "utf-16-be", "replace")
    if wide is not None:
        data = wide.encode("utf-8", "replace")
    if not data.removeprefix(_BOM).strip():
        return set()  # blank: it holds nothing
    found = {m.decode() for m in _TYPES_IN.findall(data)}
    return found or None


def _read_xml(data: bytes, where: str, problems: Problems) -> object | None:
    try:
        obj, found = fhirxml.parse(data)
    except fhirxml.XmlRefused as exc:
        problems.add(where, P["xml-refused"](error=exc.msg))
        return None
    for p in found:
        problems.add(f"{where}#{p.where}", p.msg, skipped=False)
    return obj


def _json_error(exc: orjson.JSONDecodeError) -> str:
    """Where the JSON breaks, without echoing the input (it may hold patient data)."""
    return f"at line {exc.lineno}, column {exc.colno}"


def ndjson_lines(path: Path, problems: Problems, limits: Limits = _DEFAULT) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of an NDJSON file; an over-long line is skipped in chunks, never held."""
    where = str(path)
    lineno = 0
    try:
        with _open(path) as fh:
            cap = limits.max_line_bytes
            while True:
                line = fh.readline(cap + 1)
                if not line:
                    break
                lineno += 1
                if lineno == 1:
                    line = line.removeprefix(_BOM)
                if len(line) > cap and not line.endswith(b"\n"):
                    while True:  # drain the rest of the line without keeping it
                        rest = fh.readline(_CHUNK)
                        if not rest or rest.endswith(b"\n"):
                            break
                    problems.add(f"{where}:{lineno}", P["long-line"](mb=cap // (1024 * 1024)))
                    continue
                if line.strip():
                    yield lineno, line
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        problems.add(f"{where}:{lineno + 1}", P["past-line"](kind=type(exc).__name__))


_BATCH = 4 << 20


#: what a line that is not JSON still says: its type (written first, as Bulk exports do), and a patient it
#: references in an element R4 names patients by
_LINE_TYPE = re.compile(rb'^\s*(?:\xef\xbb\xbf)?\s*\{\s*"resourceType"\s*:\s*"([A-Za-z]+)"')
_LINE_PATIENT = re.compile(rb'"(?:subject|patient|individual|beneficiary|for|focus)"\s*:\s*\{[^{}]*?"reference"\s*:\s*'
                           rb'"([^"\\]{0,512}Patient/[^"\\]{1,256})"')


def line_type(line: bytes) -> str | None:
    """The resource type a line that is not JSON starts with, if it does."""
    m = _LINE_TYPE.match(line)
    return m.group(1).decode() if m else None


def line_patient_reference(line: bytes) -> str | None:
    """The first patient reference a line that is not JSON holds where R4 names patients, as written."""
    m = _LINE_PATIENT.search(line)
    return m.group(1).decode("utf-8", "replace") if m else None


#: one NDJSON line as a reader hands it over: (line number, the native pass's key or None, the line, whether a
#: newline ends it); the line is bytes from this reader, str when DuckDB read it (sources.native)
Row = tuple[int, "str | None", "str | bytes", bool]


def ndjson_rows(path: Path, problems: Problems, limits: Limits = _DEFAULT, *,
                start: tuple[int, int] = (0, 0)) -> Iterator[Row]:
    """`ndjson_batches` line by line, as rows (no key)."""
    for first, lines, unterminated in ndjson_batches(path, problems, limits, start=start):
        last = first + len(lines) - 1
        for lineno, line in enumerate(lines, first):
            yield lineno, None, line, not (unterminated and lineno == last)


def ndjson_batches(path: Path, problems: Problems, limits: Limits = _DEFAULT, *,
                   start: tuple[int, int] = (0, 0)) -> Iterator[tuple[int, list[bytes], bool]]:
    """(number of the first line, the lines without their newline, whether the last of them ends the
    file without one) for an NDJSON file, read 4 MB at a time and split in C: the hot loop of a Bulk
    export pays no read call per line. Blank lines are passed on (decoding them fails; say nothing
    then). A line over the limit is skipped with a problem, never held whole.

    `start`: (byte offset, lines before it) to resume a plain file at the beginning of a line (the
    native first pass hands a file back to this reader where it can no longer vouch for it)."""
    where = str(path)
    cap = limits.max_line_bytes
    offset, lineno = start  # lineno: lines consumed
    codec = wide_codec(path) if not offset else None
    if codec is not None:
        yield from _wide_batches(path, codec, problems, limits)
        return
    try:
        with _open(path) as fh:
            if offset:
                fh.seek(offset)
            carry = b""
            skipping = False  # inside an over-long line, until its newline
            while True:
                data = fh.read(_BATCH)
                if not data:
                    break
                if lineno == 0 and not carry and not offset:
                    data = data.removeprefix(_BOM)
                if skipping:
                    nl = data.find(b"\n")
                    if nl < 0:
                        continue
                    data, skipping = data[nl + 1:], False
                    lineno += 1  # the over-long line, however many chunks it spanned
                buf = carry + data if carry else data
                lines = buf.split(b"\n")
                carry = lines.pop()
                if len(carry) > cap:
                    problems.add(f"{where}:{lineno + len(lines) + 1}", P["long-line"](mb=cap // (1024 * 1024)))
                    carry, skipping = b"", True
                if lines and max(map(len, lines)) > cap:
                    for i, line in enumerate(lines):
                        if len(line) > cap:
                            problems.add(f"{where}:{lineno + i + 1}", P["long-line"](mb=cap // (1024 * 1024)))
                            lines[i] = b""
                if lines:
                    yield lineno + 1, lines, False
                lineno += len(lines)
            if carry:
                yield lineno + 1, [carry], True
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        problems.add(f"{where}:{lineno + 1}", P["past-line"](kind=type(exc).__name__))


def wide_codec(path: Path) -> str | None:
    """The codec of a file written in UTF-16 or UTF-32 with its byte-order mark ('utf-16', 'utf-32'), else None."""
    try:
        with _open(path) as fh:
            head = fh.read(4)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
        return None
    return next(("utf-32" if "32" in codec else "utf-16" for bom, codec in _WIDE_BOMS if head.startswith(bom)), None)


def _wide_batches(path: Path, codec: str, problems: Problems, limits: Limits) -> Iterator[tuple[int, list[bytes], bool]]:
    """`ndjson_batches` of a UTF-16 / UTF-32 file: its lines decoded and handed on as UTF-8."""
    where = str(path)
    cap = limits.max_line_bytes
    lineno = 0
    try:
        with _open(path) as raw, io.TextIOWrapper(raw, encoding=codec, errors="replace", newline="") as fh:
            batch: list[bytes] = []
            first = 1
            for text in fh:
                lineno += 1
                terminated = text.endswith("\n")
                line = text.rstrip("\r\n").encode("utf-8")
                if len(line) > cap:
                    problems.add(f"{where}:{lineno}", P["long-line"](mb=cap // (1024 * 1024)))
                    line = b""
                batch.append(line)
                if not terminated:
                    yield first, batch, True
                    return
                if len(batch) >= 10_000:
                    yield first, batch, False
                    batch, first = [], lineno + 1
            if batch:
                yield first, batch, False
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeError) as exc:
        problems.add(f"{where}:{lineno + 1}", P["past-line"](kind=type(exc).__name__))


def parse_line(line: bytes, where: str, problems: Problems, terminated: bool | None = None) -> dict | None:
    """Decode one NDJSON line, or say what is wrong with it. `terminated`: whether a newline ended
    it (None: read that from the line itself)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        truncated = not (line.endswith(b"\n") if terminated is None else terminated)
        problems.add(where, P["bad-json-truncated"]() if truncated else P["bad-json-line"](line=exc.lineno, column=exc.colno))
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str) or not obj["resourceType"]:
        problems.add(where, P["no-type-line"]())
        return None
    return obj


@dataclass(frozen=True, slots=True)
class Entry:
    """One resource of a Bundle (or a single-resource file), as written."""

    resource: dict
    where: str
    full_url: str | None


def bundle_entries(data: object, where: str, problems: Problems, untyped: list[Entry] | None = None,
                   nested: list[Entry] | None = None, sep: str = "#") -> list[Entry] | None:
    """The entries of a parsed Bundle (or the one resource of a single-resource file), checked for shape.

    Returns None when the file is not a FHIR resource at all. Entries that cannot be used are reported
    with their index: not an object, no resource, a DELETE, a search outcome, a nested Bundle. With
    `untyped`, entries whose resource is not an object or has no resourceType go there instead (a reader
    that keeps them as unread for the patient they name reports them itself). With `nested`, a Bundle
    inside the Bundle (a batch-response's searchsets) goes there, for the caller to read its entries;
    `sep` joins an entry's index to `where` (`#` in a file, `.` inside an entry: `f#entry[3].resource.entry[0]`).
    """
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        if untyped is not None and isinstance(data, dict) and data:
            untyped.append(Entry(data, where, None))
            return []
        problems.add(where, P["no-type-file"]())
        return None
    if data["resourceType"] != "Bundle":
        return [Entry(data, where, None)]
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        problems.add(where, P["entry-not-list"]())
        return None
    out: list[Entry] = []
    for i, e in enumerate(entries):
        loc = f"{where}{sep}entry[{i}]"
        if not isinstance(e, dict):
            problems.add(loc, P["entry-not-object"]())
            continue
        res = e.get("resource")
        request = e.get("request")
        full_url = e.get("fullUrl")
        full_url = full_url if isinstance(full_url, str) and full_url else None
        if not isinstance(res, dict):
            if not (isinstance(request, dict) and request.get("method") == "DELETE"):
                if untyped is not None and res is not None:
                    untyped.append(Entry({}, loc, full_url))
                else:
                    problems.add(loc, P["entry-no-resource"]())
            continue
        rtype = res.get("resourceType")
        if not isinstance(rtype, str) or not rtype:
            if untyped is not None:
                untyped.append(Entry(res, loc, full_url))
            else:
                problems.add(loc, P["resource-no-type"]())
            continue
        search = e.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        if rtype == "Bundle":
            if nested is not None:
                nested.append(Entry(res, loc, full_url))
            else:
                problems.add(loc, P["nested"]())
            continue
        out.append(Entry(res, loc, full_url))
    return out


_TOP_TYPE = re.compile(rb'^\s*\{\s*"resourceType"\s*:\s*"([A-Za-z]+)"')


def discover_concept_maps(json_files: Iterable[Path], max_bytes: int = 20_000_000) -> list[Path]:
    """ConceptMap files among the inputs, so a folder that ships its own map just works.

    Reads only the first bytes of each file when `resourceType` comes first (as FHIR servers and
    tools write it): patient files are not read twice. Otherwise a small file is searched whole.
    """
    found = []
    for path in json_files:
        try:
            with _open(path) as fh:
                head = fh.read(512)
            top = _TOP_TYPE.match(head)
            if top is not None and top.group(1) != b"ConceptMap":
                continue
            if top is None:
                if path.stat().st_size > max_bytes:
                    continue
                with _open(path) as fh:
                    data = fh.read(max_bytes + 1)
                if len(data) > max_bytes or b'"ConceptMap"' not in data:
                    continue
            else:
                with _open(path) as fh:
                    data = fh.read(max_bytes + 1)
            obj = orjson.loads(data)
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile, orjson.JSONDecodeError):
            continue
        if isinstance(obj, dict) and obj.get("resourceType") == "ConceptMap":
            found.append(path)
    return found


def with_discovered_maps(paths: Iterable[str | Path], concept_maps: Iterable[str | Path],
                         problems: Problems | None) -> list[Path]:
    """--concept-map files plus ConceptMaps found among the inputs (each said on stderr)."""
    given = [Path(p) for p in concept_maps]
    seen = {p.resolve() for p in given}
    json_files, _ = expand_paths(paths, Problems())
    for p in discover_concept_maps(json_files):
        if p.resolve() not in seen:
            seen.add(p.resolve())
            given.append(p)
            if problems is not None:
                problems.add(str(p), P["conceptmap"](), skipped=False)
    return given


def iter_resources(paths: Iterable[str | Path], problems: Problems, limits: Limits = _DEFAULT) \
        -> Iterator[tuple[dict, str]]:
    """Every resource of the inputs with where it was read, no grouping (for inventories of codes)."""
    json_files, ndjson_files = expand_paths(paths, problems)
    for path in json_files:
        data = read_json_file(path, problems, limits)
        entries = bundle_entries(data, str(path), problems) if data is not None else None
        for e in entries or ():
            yield e.resource, e.where
    for path in ndjson_files:
        for lineno, line in ndjson_lines(path, problems, limits):
            res = parse_line(line, f"{path}:{lineno}", problems)
            if res is not None:
                yield res, f"{path}:{lineno}"
