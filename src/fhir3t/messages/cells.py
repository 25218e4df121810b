"""Text laid out by display cells for a terminal: a Chinese character takes two cells, and Chinese text has no
spaces to break at. rich and argparse wrap only at spaces, so a Chinese sentence was one long "word" folded
anywhere (inside a date range, before a closing bracket); `wrap` breaks at spaces and between wide characters,
keeps a run of narrow characters (an English word, a code, a date range) whole unless it is longer than the line,
and follows the basic Chinese line-breaking rules (no line starts with a closing mark such as ，。）; none ends with
an opening mark such as （“). English text wraps as before: only at spaces.
"""
from __future__ import annotations

import unicodedata

__all__ = ["cells", "wrap"]

#: marks that never start a line (they close or end something): glued to what comes before
_CLOSING = set("，。、；：！？）】」』》〉〕｝’”%％·…—") | {")", "]", "}", ",", ".", ";", ":", "!", "?"}
#: a narrow piece starting with one of these stays on the line of the wide character before it (抗-HCV, 胺/环孢素)
_JOINING = set("-/")
#: marks that never end a line: glued to what comes after
_OPENING = set("（【「『《〈〔｛‘“")


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF"


def cells(text: str) -> int:
    """The width of `text` on a terminal: wide and full-width characters take two cells."""
    return sum(2 if _wide(c) else 1 for c in text)


def _units(text: str) -> list[str]:
    """Unbreakable pieces: runs of spaces, runs of narrow non-space characters (a word, a code, a date range),
    single wide characters; a piece that starts with a closing mark is glued to the one before, a piece that
    ends with an opening mark to the one after."""
    atoms: list[str] = []
    for ch in text:
        prev = atoms[-1][-1] if atoms else ""
        same = prev and ((ch.isspace() and prev.isspace()) or
                         (not ch.isspace() and not prev.isspace() and not _wide(ch) and not _wide(prev)))
        if same:
            atoms[-1] += ch
        else:
            atoms.append(ch)
    units: list[str] = []
    for atom in atoms:
        glue = units and not atom.isspace() and not units[-1][-1].isspace() and \
            (atom[0] in _CLOSING or atom[0] in _JOINING or units[-1][-1] in _OPENING)
        if glue:
            units[-1] += atom
        else:
            units.append(atom)
    return units


def wrap(text: str, width: int) -> list[str]:
    """`text` as lines of at most `width` cells (a piece longer than a line is cut by cells). Spaces at a break
    are dropped; runs of spaces inside a line are kept."""
    width = max(width, 2)
    out: list[str] = []
    line, used = "", 0
    for unit in _units(text):
        n = cells(unit)
        if unit.isspace():
            if line and used + n < width:
                line, used = line + unit, used + n
            elif line:
                out.append(line.rstrip())
                line, used = "", 0
            continue
        if used + n > width and line.strip():
            out.append(line.rstrip())
            line, used = "", 0
        while n > width:  # longer than a line: cut by cells
            cut, take = 0, 0
            for ch in unit:
                w = 2 if _wide(ch) else 1
                if take + w > width - used:
                    break
                cut, take = cut + 1, take + w
            if not cut:
                out.append(line.rstrip())
                line, used = "", 0
                continue
            out.append(line + unit[:cut])
            line, used = "", 0
            unit = unit[cut:]
            n = cells(unit)
        line, used = line + unit, used + n
    if line.strip():
        out.append(line.rstrip())
    return out or [""]
