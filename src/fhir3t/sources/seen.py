"""Which patients a run has read, in a dozen bytes each.

Pass 1 must know every patient it has met: to say when a Patient appears twice, and after the last
file, whether a patient that another patient's Bundle names exists anywhere in the input. A dict
of patient keys cost ~100 bytes a patient (100 MB at a million patients, the only thing in a run
that grew with their number). `SeenPatients` keeps a 64-bit digest of each key in an open-addressing
table of two arrays (digest, index of the first source) instead: ~12-24 bytes a patient, and it
pickles as two byte strings, so the processes of a parallel run hand theirs back cheaply.

Two different keys share a digest with probability ~n²/2⁶⁵ (about 3·10⁻⁸ at a million patients);
the cost would be one wrong "appears again" note, or one garbled reference taken as naming a
patient who exists.
"""
from __future__ import annotations

import hashlib
from array import array


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


#: what `DigestMap.get` answers for a key given two different values
AMBIGUOUS = -1


class DigestMap:
    """A map of 64-bit digests: key -> the value it was given, or AMBIGUOUS when it was given two different
    ones (~16 bytes an entry). Pass 1 keeps every Patient's identifiers in one (identifier -> patient), to
    tell whether a record naming its patient by identifier names one patient, several, or none."""

    def __init__(self, capacity: int = 1 << 10) -> None:
        size = 1 << max(4, (capacity - 1).bit_length())
        self._keys = array("Q", bytes(8 * size))
        self._values = array("Q", bytes(8 * size))
        self._mask = size - 1
        self._count = 0

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

    def add(self, key: str, value: str) -> None:
        self._add(_digest(key), _digest(value))

    def _add(self, h: int, v: int) -> None:
        i = self._slot(h)
        if self._keys[i]:
            if self._values[i] != v:
                self._values[i] = 0  # two different values: ambiguous
            return
        self._keys[i] = h
        self._values[i] = v
        self._count += 1
        if self._count * 3 > len(self._keys) * 2:
            old_keys, old_values = self._keys, self._values
            size = len(old_keys) * 2
            self._keys = array("Q", bytes(8 * size))
            self._values = array("Q", bytes(8 * size))
            self._mask = size - 1
            for k, val in zip(old_keys, old_values, strict=True):
                if k:
                    j = self._slot(k)
                    self._keys[j] = k
                    self._values[j] = val

    def get(self, key: str) -> int | None:
        """The value's digest, AMBIGUOUS, or None when the key was never given."""
        i = self._slot(_digest(key))
        if not self._keys[i]:
            return None
        return self._values[i] or AMBIGUOUS

    def update(self, other: DigestMap) -> None:
        """Merge another map (another process's pass 1)."""
        for k, v in zip(other._keys, other._values, strict=True):
            if k:
                if v:
                    self._add(k, v)
                else:
                    i = self._slot(k)
                    if not self._keys[i]:
                        self._add(k, 1)
                        i = self._slot(k)
                    self._values[i] = 0
