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
from fhir3t.messages import Msg, render, table

#: what is said of a secret file this process cannot read (`what` names the file: a message or a config key).
#: The advice at the end of "unreadable" is the documented way to mount a secret for a service running as
#: `uid`/`gid` (README, deploy/).
MESSAGES = table("secret", {
    "file": "secret file",
    "missing": "{what} {path}: no such file",
    "not-file": "{what} {path}: not a regular file",
    "unreadable": "{what} {path} is not readable by fhir3t, which runs as uid {uid} (gid {gid}); the file is owned by "
                  "uid {owner}, group {group}, mode {mode}: make it owned by uid {uid} with mode 0400 (chown {uid} "
                  "FILE; chmod 0400 FILE), or group {gid} with mode 0440",
    "closed-folder": "{what} {path}: a folder on its path is closed to uid {uid} (gid {gid}), which fhir3t runs as",
})


def why_unreadable(path: Path | str, what: str | Msg | None = None) -> Msg | None:
    """None when this process can read `path`, else the message saying why not and what to do."""
    p = Path(path)
    w = MESSAGES["file"]() if what is None else what
    try:
        st = p.stat()
    except FileNotFoundError:
        return MESSAGES["missing"](what=w, path=str(p))
    except PermissionError:
        return MESSAGES["closed-folder"](what=w, path=str(p), uid=os.geteuid(), gid=os.getegid())
    if not stat.S_ISREG(st.st_mode):
        return MESSAGES["not-file"](what=w, path=str(p))
    if os.access(p, os.R_OK):
        return None
    return MESSAGES["unreadable"](what=w, path=str(p), uid=os.geteuid(), gid=os.getegid(), owner=st.st_uid,
                                  group=st.st_gid, mode=f"{stat.S_IMODE(st.st_mode):04o}")


def problem(path: Path | str, what: str | Msg | None = None) -> str | None:
    """`why_unreadable` in English (None when this process can read `path`)."""
    said = why_unreadable(path, what)
    return render(said) if said is not None else None


def check(paths: list[str]) -> list[Msg]:
    """Problems of every file given (folders: the files in them, not recursively; Kubernetes' ..data links skipped)."""
    found: list[Msg] = []
    for given in paths:
        p = Path(given)
        files = sorted(f for f in p.iterdir() if not f.name.startswith(".")) if p.is_dir() else [p]
        found += [bad for bad in map(why_unreadable, files) if bad]
    return found


def main(argv: list[str] | None = None) -> int:
    from fhir3t.messages.lang import choose

    args = sys.argv[1:] if argv is None else argv
    found = check(args)
    lang = choose(None, None, os.environ)  # the container's LANG / LC_ALL (no config is read at this point)
    for said in found:
        print(f"fhir3t: {render(said, lang)}", file=sys.stderr)
    return EXIT_INPUT_FATAL if found else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
