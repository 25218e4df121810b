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


_OPEN = "([{（【〔［｛《〈「『"
_CLOSE = ")]}）】〕］｝》〉」』"


def clip(text: str, limit: int) -> str:
    """`text` at most `limit` characters, cut where a reader can see it was cut ('…'), at a space when one
    is near, and never inside a bracket: '来那度胺胶囊(瑞复美) 10mg …' may lose its tail, never half of
    '(瑞复美)'. A bracket opened before the cut and closed after it is dropped whole."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = limit - 1
    space = text.rfind(" ", 0, cut + 1)
    if space >= limit * 2 // 3:
        cut = space
    head = text[:cut]
    depth, opened = 0, -1
    for i, ch in enumerate(head):
        if ch in _OPEN:
            if depth == 0:
                opened = i
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
    if depth:
        head = head[:opened]
    head = head.rstrip(" ,;:、，；：-")
    if not head and text[0] in _OPEN:  # the whole start is one bracket: show its inside, without the bracket
        inner = text[1:]
        close = _CLOSE[_OPEN.index(text[0])]
        return clip(inner.replace(close, " ", 1), limit)
    return (head + "…") if head else "…"
