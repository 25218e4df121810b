"""Secret files (a SMART private key, a bearer-token file, a notification token): readable by this process?

A container runs fhir3t as uid 10001; a key mounted owned by root with mode 0600 (what `docker compose`
does with a host file, and what a careful administrator writes) cannot be read by it, and the error
used to be a bare "Permission denied" deep in a run. `problem(path, what)` says at start, in one
sentence, who owns the file, its mode, who fhir3t runs as and the owner/mode that works. Run as
`python -m fhir3t.secretfiles FILE|DIR...` (the Docker entrypoint does, for /run/secrets) it checks
each file and exits 4 naming every one it cannot read.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from fhir3t.errors import EXIT_INPUT_FATAL, EXIT_OK

#: the documented way to mount a secret for a service running as `uid`/`gid` (README, deploy/)
ADVICE = "make it owned by uid {uid} with mode 0400 (chown {uid} FILE; chmod 0400 FILE), or group {gid} with mode 0440"

MESSAGES = {
    "missing": "{what} {path}: no such file",
    "not-file": "{what} {path}: not a regular file",
    "unreadable": "{what} {path} is not readable by fhir3t, which runs as uid {uid} (gid {gid}); the file is owned by "
                  "uid {owner}, group {group}, mode {mode:04o}: " + ADVICE,
    "closed-folder": "{what} {path}: a folder on its path is closed to uid {uid} (gid {gid}), which fhir3t runs as",
}


def problem(path: Path | str, what: str = "secret file") -> str | None:
    """None when this process can read `path`, else the sentence saying why not and what to do."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        return MESSAGES["missing"].format(what=what, path=p)
    except PermissionError:
        return MESSAGES["closed-folder"].format(what=what, path=p, uid=os.geteuid(), gid=os.getegid())
    if not stat.S_ISREG(st.st_mode):
        return MESSAGES["not-file"].format(what=what, path=p)
    if os.access(p, os.R_OK):
        return None
    return MESSAGES["unreadable"].format(what=what, path=p, uid=os.geteuid(), gid=os.getegid(), owner=st.st_uid,
                                         group=st.st_gid, mode=stat.S_IMODE(st.st_mode))


def check(paths: list[str]) -> list[str]:
    """Problems of every file given (folders: the files in them, not recursively; Kubernetes' ..data links skipped)."""
    found: list[str] = []
    for given in paths:
        p = Path(given)
        files = sorted(f for f in p.iterdir() if not f.name.startswith(".")) if p.is_dir() else [p]
        found += [bad for bad in map(problem, files) if bad]
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    found = check(args)
    for line in found:
        print(f"fhir3t: {line}", file=sys.stderr)
    return EXIT_INPUT_FATAL if found else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
