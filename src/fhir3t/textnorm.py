"""Text as lab and pharmacy systems write it: fold it once, compare it everywhere the same way.

NFKC turns full-width characters from Chinese systems (＋＋, （阳性）, ＨＢｓＡｇ) into their plain
forms; casefold and single spacing make "Not  Detected" and "not detected" one string.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_SPACE = re.compile(r"\s+")


def fold(text: str) -> str:
    """NFKC, case-folded, trimmed, single-spaced."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def name_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """One regex finding any of `names` in folded text.

    Latin names match as whole words (`hiv` not in `archival`); names with CJK characters match
    anywhere (Chinese has no spaces between words).
    """
    parts = []
    for name in sorted({fold(n) for n in names if n and n.strip()}, key=len, reverse=True):
        body = re.escape(name)
        if any(_is_cjk(c) for c in name):
            parts.append(body)
        else:
            parts.append(rf"(?<![0-9a-z]){body}(?![0-9a-z])")
    return re.compile("|".join(parts)) if parts else None
