"""The native first pass over Bulk NDJSON (optional extra `native`: DuckDB).

Pass 1 in Python decodes every line it cannot skip by its type (orjson) and asks the read filter
about it; at a million patients that is a hundred million dicts, of which nine in ten are dropped.
Here DuckDB reads each NDJSON file in C++ (`read_ndjson_objects`, one thread) and hands Python only
the lines the filter could keep, with their line numbers, so Python decodes one line in ten:

- a line whose type, read at its very start, is an R4 type no rule reads is dropped, exactly as
  `records.relevance.LineFilter` drops it in Python;
- for the types of `records.relevance`'s fast key (judged on their main code and on what their other
  elements name), DuckDB computes a key holding everything that decision reads: the type, the
  top-level member names, the main CodeableConcept, meta.versionId, and the JSON text of every element
  that can name a concept (`Relevance.key_elements`: an Observation's category, value, interpretation,
  bodySite, extensions, ...). A line whose key is one the Python filter has already dropped is dropped
  here. The key is computed for the lines of the type the file starts with (a Bulk export writes one
  type per file; in a file of mixed types, lines of the other types go to Python). Python learns a drop
  only when every member of the line is one the decision does not read or one in the key
  (`Relevance.key_verdict`: not from a line with `contained`, results or members, or a member R4 does
  not define), so every line of the key names the same concepts;
- every other line (Patient, shared types, unparsable lines, keys not yet judged, keys judged "keep"
  or not decided by the key) goes to Python, which decodes and judges it as it always does. The
  verdict Python gives the first line of a key is learnt: `learn(key, verdict, resource)`; what is
  learnt is bounded per type and in all (free text or a reference in a keyed element makes a key per
  line: a type stops learning after MAX_KEYS_PER_TYPE keys, its lines then go to Python).

Why learnt verdicts, not the plan compiled to SQL: the keep/drop decision is terminology (system
aliases, code normalisation, check digits, ConceptMap translation, is-a by prefix, readable systems
per type, whole-word NFKC-folded names in two scripts). Written again in SQL it would be a second
decision to keep in step by hand, and any drift is a resource dropped that the Python filter keeps:
a result no criterion sees, a patient made eligible. A key is dropped natively only after Python's
own `Relevance` has dropped a resource alike in everything that decision reads, so the native pass
keeps at least what Python keeps by construction; tests/test_native.py holds its results to the
Python reader's on generated, hospital-shaped and hostile files, and on lines alike in their code that
differ in a concept-bearing element. Labs repeat: a 10 000-patient generated export has under a hundred
distinct keys, so Python judges almost nothing twice.

Exactness guards (each falls back to keeping the line, or to the Python reader for the rest of
the file, never to dropping):
- a drop is learnt only when the key is a faithful text of what orjson read (`NativeLines.faithful`):
  DuckDB counted as many members as orjson kept (DuckDB reads the first `code` of `{"code": A, ...,
  "code": B}`, orjson the last), and the key's JSON is orjson's own writing of the keyed elements, so
  it holds no nested repeated member (DuckDB writes both, orjson reads the last: tests pin it);
- line numbers: `read_ndjson_objects` skips blank lines, so its row number is a line number only
  while no blank line came before. Each batch of rows handed over is checked against the file
  itself: the last row's text must sit, byte for byte, between two newlines at the offset the
  running sum of row lengths gives (a skipped blank line, a trimmed space, a CR/LF file shift it).
  When it does not, or DuckDB cannot parse a line (a truncated or invalid line, whose exact problem
  the Python reader reports), or DuckDB fails, the file is handed back to the Python reader at the
  last line vouched for (`files.ndjson_batches(start=...)`); what DuckDB said past it is discarded;
- gzip files, and paths DuckDB would read as a glob pattern, are read by Python.

Known difference: DuckDB's JSON reader accepts trailing commas, NaN/Infinity, exponents past the
double range and nesting past 1024 levels, which orjson refuses. A line with those whose type and
main code are those of resources already dropped is dropped without the "not valid JSON" problem the
Python reader would report for it; the screening results are the same (neither reads the line).
"""
from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from fhir3t.errors import Problems
from fhir3t.sources.files import Limits, Row, ndjson_rows, wide_codec
from fhir3t.sources.versions import later_version

#: what every key holds beyond the type and the member names: the main code (of whichever type), and
#: meta.versionId so that a later version, which the reader keeps whatever it says because it may supersede
#: a copy that counts (sources.versions.later_version), never shares a key learnt as dropped from a first
#: version alike in everything else; Python never teaches a later version's key. Then come each keyed type's
#: `key_elements` (relevance.Relevance.key_elements: what else the decision reads). Whether `component`,
#: `medicationReference`, a report's `result` or a panel's `hasMember` are there is in the member names.
KEY_PATHS = ("code", "vaccineCode", "medicationCodeableConcept", "meta.versionId")
#: what is learnt is bounded (see NativeLines.learn): distinct keys per type, characters of keys in all, one key
MAX_KEYS_PER_TYPE = 4096
MAX_LEARNT_CHARS = 8_000_000
MAX_KEY_CHARS = 4096
#: rows handed over per check against the file
CHECK_EVERY = 512
#: the longest line DuckDB is asked to parse (its read buffer is twice this); longer ones go to Python
MAX_OBJECT_BYTES = 2 << 20
#: DuckDB's memory limit (see NativeLines.__init__)
MEMORY_MB = 128
#: rows of a file whose keys are judged before it is read (see NativeLines._learn_from_sample)
SAMPLE_ROWS = 4096
_HEAD_TYPE = re.compile(rb'^\s*\{\s*"resourceType"\s*:\s*"([A-Za-z]+)"')
_GLOB = re.compile(r"[*?\[\]{}]")
_MISSING = object()
_BOM = b"\xef\xbb\xbf"

def available() -> bool:
    """Is DuckDB installed? Found without importing it: the import costs about 35 MB and 60 ms, which a run
    that then reads its small input in Python (`--native auto`) would pay for nothing."""
    return importlib.util.find_spec("duckdb") is not None


def _name(v: str) -> str:
    """A resource type or element name, safe to write into SQL as it is."""
    if not re.fullmatch(r"[A-Za-z]{1,64}", v):
        raise ValueError(f"not a resource type or element name: {v!r}")
    return v


def _sql_list(values: Iterable[str]) -> str:
    items = sorted(_name(v) for v in values)
    return "(" + ", ".join(f"'{v}'" for v in items) + ")" if items else "('')"


class NativeLines:
    """The native first pass of one run (see the module doc): `rows(path)` per NDJSON file, `learn`
    after Python judged a keyed line. Not shared between threads (one DuckDB connection of its own)."""

    def __init__(self, drop_types: Iterable[str], key_types: Mapping[str, tuple[str, ...]], *,
                 sample_verdict: Callable[[dict], bool | None] | None = None, threads: int = 1,
                 memory_mb: int | None = None) -> None:
        import duckdb

        #: a verdict on a resource with no side effect (None: none can be given so), for the lines a
        #: file's first rows sample before Python reads it (see `_learn_from_sample`)
        self.sample_verdict = sample_verdict
        self._sampled: set[str] = set()

        self._duckdb = duckdb
        # temp_directory '': DuckDB never spills to disk (its default is `.tmp` in the working directory, where
        # patient data has no business); over the limit a query fails and the file goes to Python. Measured at
        # 100 000 patients: with 64 MB at least 83 of the 300 files ran out, with 96 MB 79; 128 MB is enough
        self.con = duckdb.connect(config={"threads": threads, "memory_limit": f"{memory_mb or MEMORY_MB}MB",
                                          "preserve_insertion_order": True, "temp_directory": ""})
        self.con.execute("CREATE TEMP TABLE dropped (k VARCHAR)")
        # a table, not an IN list: DuckDB compares a constant list item by item (140 R4 types on every line)
        self.con.execute("CREATE TEMP TABLE drop_types (t VARCHAR)")
        self.con.executemany("INSERT INTO drop_types VALUES (?)", [[t] for t in sorted(drop_types)])
        #: keys whose lines Python drops (natively dropped from the next file on)
        self.dropped: set[str] = set()
        #: every key Python has judged: True keep, False drop, None not decided by the key alone
        self.verdicts: dict[str, bool | None] = {}
        self._pending: list[str] = []
        self.fallbacks = 0  # files (or their rests) handed back to the Python reader
        self.closed = False
        #: the keyed types and, for each, the elements whose JSON its key holds (KEY_PATHS, then its own)
        self.key_types = dict(key_types)
        self.paths_of = {t: self._paths(els) for t, els in self.key_types.items()}
        self._per_type: dict[str, int] = {}
        self._learnt_chars = 0
        #: (query, sample query) by a file's first type (see `queries`)
        self._sql: dict[str, tuple[str, str]] = {}

    @staticmethod
    def _paths(elements: Iterable[str]) -> tuple[str, ...]:
        """KEY_PATHS, then a keyed type's key elements."""
        paths = list(KEY_PATHS)
        paths += [_name(n) for n in elements if n not in paths]
        return tuple(paths)

    def queries(self, rtype: str) -> tuple[str, str]:
        """The key query for a file whose first line is of `rtype`, and its sample query (see
        `_learn_from_sample`). Keys are computed for the lines of that one type, with its own paths: a Bulk
        export writes one type per file, and a line of another keyed type (a file of mixed types) gets no
        key, so it goes to Python. Measured on a 200 000-line Observation file of the 100 000-patient
        population: the key query took 0.72 s with Observation's 19 paths against 1.08 s with the 46 of
        every keyed type."""
        got = self._sql.get(rtype)
        if got is None:
            paths = self.paths_of.get(rtype)
            got = self._sql[rtype] = (self._query(rtype if paths else None, paths or ()),
                                      f"""
SELECT k, arg_min(j, n) FROM ({self._query(rtype if paths else None, paths or (), SAMPLE_ROWS)})
WHERE k IS NOT NULL GROUP BY k ORDER BY min(n)""")
        return got

    @staticmethod
    def _query(rtype: str | None, key_paths: Iterable[str], limit: int = 0) -> str:
        # One json_extract of every path the type's key reads, written as one list: a CASE by type of lists
        # built item by item and written with to_json took 2.6 s where one list took 1.3 s on a 200 000-line
        # file and ran out of 150 MB (each JSON function holds an arena of its own). The list's text is the
        # items' JSON joined by ", " (NULL for a member not there): each item is one whole JSON value, so the
        # text says which items it was made of.
        # `meta` comes first, read only for a repeated versionId (DuckDB reads the first of `{"versionId": "1",
        # "versionId": "2"}`, orjson the last: a later version, which Python keeps whatever it says): such a
        # key is marked, so it is never one learnt from a first version, and never learnt itself. Its text is
        # cut off the key's by length (a list slice cost 0.2 s more on a 200 000-line file).
        # rtype None (a file whose first type is not keyed): no line gets a key.
        paths = ", ".join(f"'$.{p}'" for p in ("meta", *key_paths))
        keyed = f"t = '{_name(rtype)}'" if rtype else "false"
        return f"""
WITH r AS (
  SELECT row_number() OVER () AS n,
         sum(coalesce(strlen(json::VARCHAR), 0) + 1) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS c,
         json::VARCHAR AS j
  FROM read_ndjson_objects(?, ignore_errors = true, maximum_object_size = {MAX_OBJECT_BYTES}, compression = 'none')
  {f"LIMIT {limit}" if limit else ""}),
t AS (SELECT n, c, j, regexp_extract(j, '^\\s*\\{{\\s*"resourceType"\\s*:\\s*"([A-Za-z]+)"', 1) AS t FROM r),
e AS (SELECT n, c, j, t,
        CASE WHEN {keyed} THEN try(json_extract(j, [{paths}])) END AS e,
        CASE WHEN {keyed} THEN try(json_keys(j)) END AS ks
      FROM t WHERE j IS NULL OR t NOT IN (SELECT t FROM drop_types) OR strpos(j, '"contained"') > 0
                   OR (t = 'Binary' AND strpos(j, 'fhir') > 0)),
k AS (SELECT n, c, j, CASE WHEN e IS NOT NULL AND ks IS NOT NULL
                           THEN t || chr(31) || len(ks)::VARCHAR
                                || CASE WHEN e[1] LIKE '%"versionId"%"versionId"%' THEN 'm' ELSE '' END
                                || chr(31) || array_to_string(ks, chr(30)) || chr(31)
                                || '[' || substr(e::VARCHAR, length(coalesce(e[1]::VARCHAR, 'NULL')) + 4) END AS k FROM e)
SELECT n, c, strlen(j), k, j FROM k WHERE k IS NULL OR k NOT IN (SELECT k FROM dropped)
"""

    def learn(self, key: str, verdict: bool | None, resource: dict | None = None) -> None:
        """Python's verdict on a line of this key, decoded as `resource` (None: the key alone did not decide it).

        A drop is learnt only where the key is a faithful text of what Python read (`faithful`): no repeated
        member, and the key's JSON equal to orjson's own writing of the keyed elements. What is learnt is
        bounded: a type stops learning new keys after MAX_KEYS_PER_TYPE (free text or a unique reference in a
        keyed element makes a key per line, which teaches nothing), and every type after MAX_LEARNT_CHARS of
        keys; a key over MAX_KEY_CHARS is not learnt. A key not learnt sends its lines to Python."""
        if key in self.verdicts or len(key) > MAX_KEY_CHARS or self._learnt_chars > MAX_LEARNT_CHARS:
            return
        rtype = key.split("\x1f", 1)[0]
        count = self._per_type.get(rtype, 0)
        if count >= MAX_KEYS_PER_TYPE:
            return
        self._per_type[rtype] = count + 1
        self._learnt_chars += len(key)
        if verdict is False and (resource is None or not self.faithful(key, resource)):
            verdict = None
        self.verdicts[key] = verdict
        if verdict is False:
            self.dropped.add(key)
            self._pending.append(key)

    def faithful(self, key: str, resource: dict) -> bool:
        """Does the key say exactly what orjson read of the line? DuckDB counted as many members as orjson
        kept (orjson keeps the last of a repeated name, DuckDB's json_extract reads the first: `{"code": A,
        ..., "code": B}`) and saw one versionId in `meta` (the count is marked otherwise), and the key's
        JSON (the extracted elements as DuckDB wrote them) is orjson's writing of them as decoded: then it
        holds no nested repeated member either (DuckDB writes both of `{"coding": [A], "coding": [B]}`,
        orjson reads B: tests pin it), and every line of the key decodes to the same elements (numbers
        aside, which no decision reads)."""
        rtype, count, rest = key.split("\x1f", 2)
        paths = self.paths_of.get(rtype)
        if paths is None or count != str(len(resource)):
            return False
        import orjson

        texts = []
        try:
            for path in paths:
                value: object = resource
                for part in path.split("."):
                    value = value.get(part, _MISSING) if type(value) is dict else _MISSING
                texts.append("NULL" if value is _MISSING else orjson.dumps(value).decode())
        except (TypeError, orjson.JSONEncodeError):
            return False
        return rest.rsplit("\x1f", 1)[-1] == "[" + ", ".join(texts) + "]"

    @staticmethod
    def head_type(head: bytes) -> str:
        """The type of a file's first line, read at the very start of the file's first bytes `head` ('' if
        they do not start so)."""
        m = _HEAD_TYPE.match(head.removeprefix(_BOM))
        return m.group(1).decode() if m else ""

    def _learn_from_sample(self, path: Path, rtype: str) -> None:
        """Judge the keys of a file's first rows before reading it, when its first line is of a type no
        earlier file was sampled for: otherwise the first file of each type would hand Python every row
        of each key until the next file. Only verdicts given without a side effect are learnt (a code
        system nobody knows is said by Python where it first meets it, as without the native pass)."""
        if self.sample_verdict is None or rtype in self._sampled or rtype not in self.paths_of:
            return
        self._sampled.add(rtype)
        import orjson

        for key, text in self.con.execute(self.queries(rtype)[1], [str(path)]).fetchall():
            if key in self.verdicts:
                continue
            try:
                res = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(res, dict) and not later_version(res):  # a later version teaches nothing (see KEY_PATHS)
                verdict = self.sample_verdict(res)
                if verdict is not None:
                    self.learn(key, verdict, res)
        self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.con.executemany("INSERT INTO dropped VALUES (?)", [[k] for k in self._pending])
            self._pending.clear()

    def close(self) -> None:
        """Give DuckDB's memory back (the verdicts stay readable); files asked for afterwards are read by Python."""
        if not self.closed:
            self.closed = True
            self.con.close()

    def usable(self, path: Path) -> bool:
        return not self.closed and not path.name.lower().endswith(".gz") and _GLOB.search(str(path)) is None \
            and wide_codec(path) is None  # (DuckDB reads UTF-8 only: a UTF-16 / UTF-32 file goes to the Python reader)

    def rows(self, path: Path, problems: Problems, limits: Limits) -> Iterator[Row]:
        """The lines of one NDJSON file that the read filter could keep, in file order (see the module
        doc): from DuckDB while each batch checks out against the file, then from the Python reader."""
        if not self.usable(path):
            yield from ndjson_rows(path, problems, limits)
            return
        resume = (0, 0)  # (byte offset, lines before it) of the first line not yet vouched for
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            yield from ndjson_rows(path, problems, limits, start=resume)
            return
        try:
            base = len(_BOM) if os.pread(fd, len(_BOM), 0) == _BOM else 0
            cap = limits.max_line_bytes
            try:
                rtype = self.head_type(os.pread(fd, 512, 0))
                self._learn_from_sample(path, rtype)
                self._flush()
                cur = self.con.execute(self.queries(rtype)[0], [str(path)])
                while True:
                    got = cur.fetchmany(CHECK_EVERY)
                    # a line DuckDB could not parse, or one over the limit: the Python reader says what it is
                    bad = next((i for i, row in enumerate(got) if row[4] is None or row[2] > cap), None)
                    batch = got if bad is None else got[:bad]
                    if batch:
                        n, c, length, _, text = batch[-1]
                        end = _check(fd, base + c - length - 1, text, length)
                        if end is None:
                            break  # not where the row count says: a blank line, a trimmed space, a CR/LF file
                        for n_, _c, _len, key, text_ in batch:
                            yield n_, key, text_, True if n_ != n else end
                        resume = (base + c, n)
                    if bad is not None:
                        break
                    if len(got) < CHECK_EVERY:
                        return  # every row DuckDB handed over was vouched for: the file is done
            except self._duckdb.Error:
                pass
        finally:
            os.close(fd)
        self.fallbacks += 1
        yield from ndjson_rows(path, problems, limits, start=resume)


def _check(fd: int, start: int, text: str, length: int) -> bool | None:
    """Does `text` sit at `start` as a whole line of the file? None if not; else whether a newline
    ends it (False: the file's last line, unterminated)."""
    if start < 0:
        return None
    before = 1 if start > 0 else 0
    got = os.pread(fd, length + before + 1, start - before)
    if before and got[:1] != b"\n":
        return None
    if got[before:before + length] != text.encode("utf-8", "surrogatepass"):
        return None
    tail = got[before + length:]
    if tail == b"\n":
        return True
    return False if tail == b"" else None


__all__ = ["KEY_PATHS", "NativeLines", "Row", "available"]
