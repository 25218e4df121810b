"""Where a run groups resources by patient between reading and screening.

`MemoryStore` keeps parsed resources in a dict (small inputs: nothing is serialised twice).
`DiskStore` appends them to hash partitions on disk and gives them back one partition at a time,
so memory holds one partition's patients, whatever the number of patients: partition files are
sequential appends (no index to maintain, no sort), and one partition (1/1024 of what was kept)
is bucketed by patient in memory as bytes when it is read back, each patient decoded only when
screened. Write buffers are 12 KB a partition (12 MB at most: with 64 KB the native first pass
peaked at 248 MB on 10 000 patients, 201 MB with 24 KB, 190 MB with 12 KB, the output identical; a
flush is one append, ~400 000 of them for the ~5 GB a million patients keep);
at a million patients (~5 GB kept) a partition is ~5 MB, so both stay far below the memory a
run may use. It lives in a fresh temporary folder removed on close,
so an interrupted run leaves nothing a later run could read; a later run also removes what a killed
run left behind (`work_dir`), so a crash at a million patients does not keep gigabytes of disk.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson

from fhir3t.messages.core import from_data, to_data
from fhir3t.sources.base import Unread


@dataclass
class Group:
    """One patient's resources as stored: (resource, where) pairs, fullUrl aliases, unread entries."""

    resources: list[tuple[dict, str]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    unread: list[Unread] = field(default_factory=list)
    source: str = ""


class GroupStore(Protocol):
    def add(self, key: str, resource: dict, where: str, source: str) -> None: ...
    def alias(self, key: str, full_url: str, ref: str) -> None: ...
    def unread(self, key: str, item: Unread, source: str) -> None: ...
    def groups(self) -> Iterator[tuple[str, Group]]: ...
    def close(self) -> None: ...
    @property
    def size(self) -> int: ...  # resources stored


class MemoryStore:
    def __init__(self) -> None:
        self._groups: dict[str, Group] = {}
        self.size = 0

    def _group(self, key: str, source: str) -> Group:
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = Group(source=source)
        return g

    def add(self, key: str, resource: dict, where: str, source: str) -> None:
        self._group(key, source).resources.append((resource, where))
        self.size += 1

    def alias(self, key: str, full_url: str, ref: str) -> None:
        self._group(key, "").aliases[full_url] = ref

    def unread(self, key: str, item: Unread, source: str) -> None:
        self._group(key, source).unread.append(item)

    def groups(self) -> Iterator[tuple[str, Group]]:
        yield from self._groups.items()

    def close(self) -> None:
        self._groups.clear()


_OWNER = "owner"


def work_dir(prefix: str, folder: str | Path | None = None) -> Path:
    """A fresh temporary folder, marked with this process (host and pid). Folders of the same
    prefix whose process is gone (killed mid-run: no cleanup ran) are removed first; a folder whose
    mark cannot be read, or that belongs to another host or a live process, is left alone."""
    parent = Path(folder or tempfile.gettempdir())
    host = socket.gethostname()
    for old in parent.glob(f"{prefix}*"):
        try:
            owner_host, pid = (old / _OWNER).read_text(encoding="utf-8").split()
            if owner_host == host and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        except (OSError, ValueError):
            continue
    new = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    (new / _OWNER).write_text(f"{host} {os.getpid()}", encoding="utf-8")
    return new


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


_RES, _ALIAS, _UNREAD = 0, 1, 2
#: partitions of a disk store (the parallel runner's pass 2 splits the same numbers)
PARTITIONS = 1024


class DiskStore:
    """Hash partitions of length-free NDJSON records: [kind, key, ...] (see module doc)."""

    def __init__(self, folder: str | Path | None = None, partitions: int = PARTITIONS, buffer_bytes: int = 12 << 10) -> None:
        self.dir = work_dir("fhir3t-group-", folder)
        self.partitions = partitions
        self._buffers: list[list[bytes]] = [[] for _ in range(partitions)]
        self._buffered = [0] * partitions
        self._limit = buffer_bytes
        self.size = 0

    def _part(self, key: str) -> int:
        return zlib.crc32(key.encode()) % self.partitions

    def _put(self, key: str, record: list) -> None:
        p = self._part(key)
        line = orjson.dumps(record) + b"\n"
        self._buffers[p].append(line)
        self._buffered[p] += len(line)
        if self._buffered[p] >= self._limit:
            self._flush(p)

    def _flush(self, p: int) -> None:
        if not self._buffers[p]:
            return
        with open(self.dir / f"{p:04d}.ndjson", "ab") as fh:
            fh.write(b"".join(self._buffers[p]))
        self._buffers[p] = []
        self._buffered[p] = 0

    def add(self, key: str, resource: dict, where: str, source: str) -> None:
        self._put(key, [_RES, key, where, source, resource])
        self.size += 1

    def alias(self, key: str, full_url: str, ref: str) -> None:
        self._put(key, [_ALIAS, key, full_url, ref])

    def unread(self, key: str, item: Unread, source: str) -> None:
        self._put(key, [_UNREAD, key, item.type, item.where, to_data(item.why), item.ref, source, item.resource])

    def flush(self) -> None:
        for p in range(self.partitions):
            self._flush(p)

    def groups(self) -> Iterator[tuple[str, Group]]:
        self.flush()
        for p in range(self.partitions):
            path = self.dir / f"{p:04d}.ndjson"
            if path.exists():
                yield from partition_groups([path])
                path.unlink()

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    def from_memory(cls, mem: MemoryStore, folder: str | Path | None = None) -> DiskStore:
        """Spill what a MemoryStore holds (the run outgrew memory)."""
        disk = cls(folder)
        for key, g in mem.groups():
            for res, where in g.resources:
                disk.add(key, res, where, g.source)
            for url, ref in g.aliases.items():
                disk.alias(key, url, ref)
            for u in g.unread:
                disk.unread(key, u, g.source)
        mem.close()
        return disk


def _key_of(line: bytes) -> str:
    """The key of a record line `[kind,"key",...]` without decoding the rest of it."""
    start = line.find(b'"') + 1
    end = line.find(b'"', start)
    raw = line[start:end]
    if start == 0 or end < 0 or b"\\" in raw:  # escapes in the key: decode the line properly
        return str(orjson.loads(line)[1])
    return raw.decode("utf-8")


def partition_groups(paths: list[Path]) -> Iterator[tuple[str, Group]]:
    """One partition's groups, from the files of one or more stores (the processes of a parallel run),
    in the order their first record was written. The lines are bucketed by key as bytes and each group
    is decoded only when it is handed out, so memory holds one partition's bytes and one patient's
    resources (decoded, a partition of a million-patient run would be ~10 times its ~5 MB)."""
    buckets: dict[str, list[bytes]] = {}
    for path in paths:
        if not path.exists():
            continue
        with open(path, "rb") as fh:
            for line in fh:
                key = _key_of(line)
                bucket = buckets.get(key)
                if bucket is None:
                    buckets[key] = [line]
                else:
                    bucket.append(line)
    while buckets:
        key = next(iter(buckets))
        yield key, _group(buckets.pop(key))


def _group(lines: list[bytes]) -> Group:
    g = Group()
    for line in lines:
        rec = orjson.loads(line)
        if rec[0] == _RES:
            g.resources.append((rec[4], rec[2]))
            g.source = g.source or rec[3]
        elif rec[0] == _ALIAS:
            g.aliases[rec[2]] = rec[3]
        else:
            g.unread.append(Unread(rec[2], rec[3], from_data(rec[4]), rec[5],  # type: ignore[arg-type]
                                   rec[7] if len(rec) > 7 else None))
            g.source = g.source or rec[6]
    return g
