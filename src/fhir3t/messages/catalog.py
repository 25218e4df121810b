"""The compiled message catalogs (.mo) gettext reads, from the .po sources kept in the repository.

    locale/fhir3t.pot                          every declared message (tools/i18n.py extract)
    locale/zh_CN/LC_MESSAGES/fhir3t.po         the Chinese translations (reviewed text, in git)
    locale/zh_CN/LC_MESSAGES/fhir3t.mo         compiled (a wheel carries it; never in git)
    locale/zh_CN/LC_MESSAGES/fhir3t.mo.sha256  the sha256 of the .po it was compiled from

A wheel is built with its .mo files compiled (setup.py runs `compile_tree` in build_py). A checkout or an
editable install has only the .po: the first run that needs a language compiles it with Babel into
`$XDG_CACHE_HOME/fhir3t/locale/<sha256 of the .po>/...` (a changed .po is a new folder, so a stale catalog is
never read), or in memory when no cache folder can be written. A packaged .mo is used only while its
recorded sha256 matches the .po beside it, so an edited .po is never shadowed by an old build.

This module imports only the standard library at module level (setup.py loads it by path, before fhir3t's
dependencies are installed); Babel is imported when a catalog is compiled.
"""
from __future__ import annotations

import gettext
import hashlib
import io
import os
import tempfile
from pathlib import Path

DOMAIN = "fhir3t"
#: where the catalogs live: locale/<lang>/LC_MESSAGES/fhir3t.po (lang as gettext spells it: zh_CN)
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
POT = LOCALE_DIR / f"{DOMAIN}.pot"


def po_path(code: str, base: Path | None = None) -> Path:
    return (base or LOCALE_DIR) / code / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalog_codes(base: Path | None = None) -> list[str]:
    """The gettext codes (zh_CN, en) that have a .po source."""
    return sorted(p.parent.parent.name for p in (base or LOCALE_DIR).glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compile_po(po: Path) -> bytes:
    """A .po file as .mo bytes (Babel; fuzzy entries are left out, so they fall back to English)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile_tree(src: Path, out: Path) -> list[Path]:
    """Compile every .po under `src` (a locale folder) into .mo files (with their .sha256) under `out`."""
    written = []
    for code in catalog_codes(src):
        po = po_path(code, src)
        mo = po_path(code, out).with_suffix(".mo")
        _write_atomic(mo, compile_po(po))
        _write_atomic(mo.with_name(mo.name + ".sha256"), (_sha256(po) + "\n").encode())
        written.append(mo)
    return written


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fhir3t" / "locale"


def _mo_bytes(code: str) -> bytes | None:
    """The compiled catalog of a gettext code: packaged (when it matches its .po), cached, or compiled now."""
    po = po_path(code)
    packaged = po.with_suffix(".mo")
    if not po.is_file():
        return packaged.read_bytes() if packaged.is_file() else None
    digest = _sha256(po)
    stamp = packaged.with_name(packaged.name + ".sha256")
    try:
        if packaged.is_file() and stamp.read_text().strip() == digest:
            return packaged.read_bytes()
    except OSError:
        pass
    cached = cache_dir() / digest[:24] / code / "LC_MESSAGES" / f"{DOMAIN}.mo"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    data = compile_po(po)
    try:
        _write_atomic(cached, data)
    except OSError:  # a read-only home (a container): compiled in memory, for this process
        pass
    return data


def load(code: str) -> gettext.NullTranslations:
    """The translations of a gettext code (zh_CN); none (the English templates) when it has no catalog."""
    data = _mo_bytes(code)
    if data is None:
        return gettext.NullTranslations()
    return gettext.GNUTranslations(io.BytesIO(data))


__all__ = ["DOMAIN", "LOCALE_DIR", "POT", "cache_dir", "catalog_codes", "compile_po", "compile_tree", "load", "po_path"]
