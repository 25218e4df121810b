"""Reading a file someone named (a config file, a key, a token, a state file) with a bound.

`read_small` reads at most `limit` bytes and refuses what is not a regular file: `key = "/dev/zero"`
must end in one sentence, not in 24 GB of memory, and a FIFO must not hold the start of a service.
The file is opened non-blocking, checked with fstat (no race between the check and the read), then
read in chunks up to the limit.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from fhir3t.errors import ConfigError, Fhir3tError
from fhir3t.messages import Msg, table

KB = 1024
MB = 1024 * KB
#: sizes of the small files fhir3t reads (far above any real one)
CONFIG_LIMIT = 1 * MB
KEY_LIMIT = 1 * MB
TOKEN_LIMIT = 64 * KB
STATE_LIMIT = 64 * MB
DATA_LIMIT = 512 * MB  # ConceptMaps, criteria, a Bundle to push: data, but still finite

#: why a named file was not read (`what` names the file: a message, or text such as a config key)
MESSAGES = table("file", {
    "cannot-read": "{path}: cannot read {what} ({reason})",
    "not-regular": "{path}: {what} is not a regular file",
    "too-large": "{path}: {what} is larger than {limit}; not read",
})


def _size(n: int) -> str:
    return f"{n // MB} MB" if n >= MB and n % MB == 0 else f"{n // KB} KB" if n >= KB else f"{n} bytes"


def read_small(path: str | Path, limit: int, what: str | Msg, error: type[Fhir3tError] = ConfigError) -> bytes:
    """The bytes of `path` (a regular file of at most `limit` bytes), else `error` with one sentence.

    FileNotFoundError is passed on as such (callers often treat a missing file as "start afresh")."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(MESSAGES["cannot-read"](path=str(p), what=what, reason=exc.strerror or type(exc).__name__)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(MESSAGES["not-regular"](path=str(p), what=what))
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise error(MESSAGES["too-large"](path=str(p), what=what, limit=_size(limit)))
        return b"".join(chunks)
    except OSError as exc:
        raise error(MESSAGES["cannot-read"](path=str(p), what=what, reason=exc.strerror or type(exc).__name__)) from None
    finally:
        os.close(fd)


__all__ = ["CONFIG_LIMIT", "DATA_LIMIT", "KEY_LIMIT", "STATE_LIMIT", "TOKEN_LIMIT", "read_small"]
