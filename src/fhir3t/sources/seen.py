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
