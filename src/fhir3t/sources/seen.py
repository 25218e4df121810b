"""Which patients a run has read, in a dozen bytes each.

Pass 1 must know every patient it has met: to say when a Patient appears twice, and after the last
file, whether a patient that another patient's Bundle names exists anywhere in the input. A dict
of patient keys cost ~100 bytes a patient (100 MB at a million patients, the only thing in a run
that grew with their number). `SeenPatients` keeps a 64-bit digest of each key in an open-addressing
table of two arrays (digest, index of the first source) instead: ~12-24 bytes a patient, and it
pickles as two byte strings, so the processes of a parallel run hand theirs back cheaply.

Every Patient's identifiers go to an `IdentLog` (16 bytes a key, appended, in a file past 1 MB), read
once after pass 1 for the keys records named their patient by.

Two different keys share a digest with probability ~n²/2⁶⁵ (about 3·10⁻⁸ at a million patients);
the cost would be one wrong "appears again" note, or one garbled reference taken as naming a
patient who exists.
"""
from __future__ import annotations

import hashlib
import shutil
import struct
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path


def _digest(key: str) -> int:
    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
    return h or 1  # 0 marks an empty slot


class SeenPatients:
    """A set of patient keys, each with the source it was first read from."""

    def __init__(self, capacity: int = 1 << 10) -> None:
        size = 1 << max(4, (capacity - 1).bit_length())
        self._keys = array("Q", bytes(8 * size))
        self._first = array("I", bytes(4 * size))
        self._mask = size - 1
        self._count = 0
        self._sources: list[str] = []
        self._source_ids: dict[str, int] = {}

    def __len__(self) -> int:
        return self._count

    def _slot(self, h: int) -> int:
        keys, mask = self._keys, self._mask
        i = h & mask
        while True:
            k = keys[i]
            if k == 0 or k == h:
                return i
            i = (i + 1) & mask

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._keys[self._slot(_digest(key))] != 0

    def add(self, key: str, source: str) -> str | None:
        """Record `key` as read from `source`; the source it was first read from when seen before."""
        h = _digest(key)
        i = self._slot(h)
        if self._keys[i]:
            return self._sources[self._first[i]]
        sid = self._source_ids.get(source)
        if sid is None:
            sid = self._source_ids[source] = len(self._sources)
            self._sources.append(source)
        self._put(i, h, sid)
        return None

    def _put(self, i: int, h: int, sid: int) -> None:
        self._keys[i] = h
        self._first[i] = sid
        self._count += 1
        if self._count * 3 > len(self._keys) * 2:  # load over 2/3: double
            self._grow()

    def _grow(self) -> None:
        old_keys, old_first = self._keys, self._first
        size = len(old_keys) * 2
        self._keys = array("Q", bytes(8 * size))
        self._first = array("I", bytes(4 * size))
        self._mask = size - 1
        for h, sid in zip(old_keys, old_first, strict=True):
            if h:
                j = self._slot(h)
                self._keys[j] = h
                self._first[j] = sid

    def update(self, other: SeenPatients) -> None:
        """Add every patient of `other` (another process's pass 1); sources are kept as first seen there."""
        for h, sid in zip(other._keys, other._first, strict=True):
            if not h:
                continue
            i = self._slot(h)
            if self._keys[i]:
                continue
            source = other._sources[sid]
            mine = self._source_ids.get(source)
            if mine is None:
                mine = self._source_ids[source] = len(self._sources)
                self._sources.append(source)
            self._put(i, h, mine)


#: what `resolve_identifiers` answers for a key given two different values
AMBIGUOUS = -1
#: an identifier log keeps this many bytes in memory before it goes to a file (16 bytes an identifier key)
SPILL_BYTES = 1 << 20
_PAIR = struct.Struct("<QQ")


class IdentLog:
    """Every Patient's identifiers (identifier key -> patient) as pairs of 64-bit digests, appended: in memory up
    to SPILL_BYTES, then in a file of its own. It is read once, after pass 1, for the few keys records named
    their patient by (`resolve_identifiers`); a run with no such record never reads it.

    Why not a hash table in memory: at a million patients the table held 2 M identifier keys in 64 MB
    (96 MB while it doubled), which took a one-process run to a 217 MB peak; a log is 16 bytes a key on disk
    and at most SPILL_BYTES in memory.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self._folder = folder
        self._buf = bytearray()
        self._path: Path | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: str, value: str) -> None:
        self._buf += _PAIR.pack(_digest(key), _digest(value))
        self._count += 1
        if len(self._buf) >= SPILL_BYTES:
            self._spill()

    def _spill(self) -> None:
        if self._path is None:
            from fhir3t.sources.store import work_dir

            self._path = work_dir("fhir3t-idents-", self._folder) / "idents.bin"
        with open(self._path, "ab") as fh:
            fh.write(self._buf)
        self._buf = bytearray()

    def pairs(self) -> Iterator[tuple[int, int]]:
        """Every (key digest, patient digest) logged, in order."""
        if self._path is not None:
            with open(self._path, "rb") as fh:
                while chunk := fh.read(SPILL_BYTES):
                    yield from _PAIR.iter_unpack(chunk)
        yield from _PAIR.iter_unpack(bytes(self._buf))

    def close(self) -> None:
        """Remove its file (a log handed to another process is closed by that process)."""
        if self._path is not None:
            shutil.rmtree(self._path.parent, ignore_errors=True)
            self._path = None
        self._buf = bytearray()

    def __getstate__(self) -> tuple[str | Path | None, bytes, Path | None, int]:
        # handed to the parent of a parallel run: the file stays where it is (the parent reads and closes it)
        return self._folder, bytes(self._buf), self._path, self._count

    def __setstate__(self, state: tuple[str | Path | None, bytes, Path | None, int]) -> None:
        self._folder, buf, self._path, self._count = state
        self._buf = bytearray(buf)


def resolve_identifiers(logs: Iterable[IdentLog], keys: Iterable[str]) -> dict[str, int]:
    """For each key some Patient carries: the digest of that patient, or AMBIGUOUS when Patients of two
    different ids carry it (in any of the logs: a parallel run's processes each keep one)."""
    wanted = {_digest(k): k for k in keys}
    found: dict[int, int] = {}
    if not wanted:
        return {}
    for log in logs:
        for k, v in log.pairs():
            if k in wanted:
                before = found.get(k)
                found[k] = v if before in (None, v) else AMBIGUOUS
    return {wanted[k]: v for k, v in found.items()}
