"""The message catalogs: extract every declared message, merge it into the translations, compile, check.

    python tools/i18n.py extract    src/fhir3t/messages/locale/fhir3t.pot from every Message / Plural / table
    python tools/i18n.py update     merge the .pot into each .po (new messages untranslated, removed ones dropped)
    python tools/i18n.py compile    .po -> .mo beside it (what a wheel build does; a checkout compiles on first use)
    python tools/i18n.py check      every message translated, no fuzzy entry, the same placeholders as the English

Adding a message: declare it (`Message("area.id", "English {x}")`), run `extract` and `update`, translate the new
entries of `locale/zh_CN/LC_MESSAGES/fhir3t.po` (any PO editor: Poedit, Lokalize, or a text editor), run `check`.
tests/test_i18n.py fails until every declared message has its zh-CN translation. The same as pybabel:
`pybabel extract -F babel.cfg -k Message:1c,2 -k Plural:1c,2,3 --no-default-keywords -o ...pot src/fhir3t`.
"""
from __future__ import annotations

import string
import sys
from datetime import datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from fhir3t.messages.catalog import LOCALE_DIR, POT, catalog_codes, compile_tree, po_path  # noqa: E402
from fhir3t.messages.extract import KEYWORDS  # noqa: E402

SRC = ROOT / "src" / "fhir3t"
METHOD = "fhir3t.messages.extract:extract"
#: fixed header dates, so extracting twice gives the same file (git shows only real changes)
STAMP = datetime(2026, 11, 1)
HEADER = "Messages of fhir3t (every sentence a person reads). The id of each message is its msgctxt."


def extracted() -> Catalog:
    """Every declared message of src/fhir3t, as a catalog template."""
    cat = Catalog(project="fhir3t", header_comment=f"# {HEADER}", creation_date=STAMP, revision_date=STAMP,
                  fuzzy=False, charset="utf-8")
    for filename, _lineno, message, comments, context in extract_from_dir(
            str(SRC), method_map=[("**.py", METHOD)], keywords=KEYWORDS, comment_tags=(), strip_comment_tags=True):
        if "locale" in filename:
            continue
        cat.add(message, locations=[(f"src/fhir3t/{filename}", None)], auto_comments=comments, context=context)
    return cat


def _write(cat: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, cat, width=120, sort_output=True, include_lineno=False, omit_header=False)


def extract() -> Catalog:
    cat = extracted()
    _write(cat, POT)
    print(f"{POT.relative_to(ROOT)}: {len(cat)} messages")
    return cat


def read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def update() -> None:
    template = extracted()
    for code in catalog_codes() or ["zh_CN"]:
        path = po_path(code)
        cat = read(path, code) if path.is_file() else Catalog(locale=code, project="fhir3t", creation_date=STAMP,
                                                              fuzzy=False)
        cat.update(template, no_fuzzy_matching=True, update_header_comment=False, keep_user_comments=True)
        cat.obsolete.clear()  # a removed message leaves the catalog (git keeps its history)
        cat.revision_date = STAMP
        _write(cat, path)
        missing = sum(1 for m in cat if m.id and not _translated(m))
        print(f"{path.relative_to(ROOT)}: {len(cat)} messages, {missing} to translate")


def _translated(m: object) -> bool:
    s = getattr(m, "string", "")
    return all(s) if isinstance(s, tuple) else bool(s)


def placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def problems(code: str) -> list[str]:
    """What is wrong with one catalog: untranslated, fuzzy, placeholders that differ from the English."""
    out = []
    cat = read(po_path(code), code)
    for m in cat:
        if not m.id:
            continue
        where = f"{code} {m.context}"
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if not _translated(m):
            out.append(f"{where}: not translated")
            continue
        if m.fuzzy:
            out.append(f"{where}: fuzzy (review it, then remove the flag)")
        english = set().union(*(placeholders(i) for i in ids))
        for s in strings:
            try:
                got = placeholders(s)
            except ValueError as exc:
                out.append(f"{where}: not a valid template ({exc})")
                continue
            if got - english:
                out.append(f"{where}: placeholders not in the English: {sorted(got - english)}")
            if english - got - {"n"}:
                out.append(f"{where}: placeholders left out: {sorted(english - got - {'n'})}")
    return out


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "extract":
        extract()
    elif command == "update":
        extract()
        update()
    elif command == "compile":
        for mo in compile_tree(LOCALE_DIR, LOCALE_DIR):
            print(mo.relative_to(ROOT))
    elif command == "check":
        found = [p for code in catalog_codes() for p in problems(code)]
        for p in found:
            print(p)
        return 1 if found else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
