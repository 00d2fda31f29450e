"""Text helpers of `prefswift lint`: the normalised form pairs are compared in, word tokens, and the writing system
(script) a text is mostly written in, counted with numpy over all texts of a field at once."""
import re
import unicodedata
from typing import List, Sequence

import numpy as np

# one token per CJK character (those scripts do not separate words), else runs of letters and digits
WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+")


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace runs as one space, stripped: the form in which texts are compared."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


_ASCII_SEPARATORS = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def words(normalized: str) -> List[str]:
    """Runs of letters and digits, and single CJK characters (ASCII text takes a faster path to the same words)."""
    if normalized.isascii():
        return normalized.translate(_ASCII_SEPARATORS).split()
    return WORD.findall(normalized)


# (first code point, last code point, script); code points in no range are not letters of a script we name
SCRIPT_RANGES = [
    (0x41, 0x5A, "Latin"), (0x61, 0x7A, "Latin"), (0xC0, 0x24F, "Latin"), (0x370, 0x3FF, "Greek"),
    (0x400, 0x52F, "Cyrillic"), (0x530, 0x58F, "Armenian"), (0x590, 0x5FF, "Hebrew"), (0x600, 0x6FF, "Arabic"),
    (0x750, 0x77F, "Arabic"), (0x900, 0x97F, "Devanagari"), (0x980, 0x9FF, "Bengali"), (0xB80, 0xBFF, "Tamil"),
    (0xE00, 0xE7F, "Thai"), (0x10A0, 0x10FF, "Georgian"), (0x1100, 0x11FF, "Hangul"), (0x1E00, 0x1EFF, "Latin"),
    (0x3040, 0x30FF, "Kana"), (0x3130, 0x318F, "Hangul"), (0x3400, 0x4DBF, "Han"), (0x4E00, 0x9FFF, "Han"),
    (0xAC00, 0xD7AF, "Hangul"), (0xF900, 0xFAFF, "Han"), (0x20000, 0x2FFFF, "Han"),
]
SCRIPTS = sorted({name for _, _, name in SCRIPT_RANGES})
NO_LETTERS = "none"
SCRIPT_SAMPLE = 2000  # characters of each text looked at: plenty to tell its script, bounded work per row


def _lookup():
    """The script index (or -1) of every code point of the Basic Multilingual Plane, and the ranges above it."""
    table = np.full(0x10000, -1, dtype=np.int64)
    high = []
    for lo, hi, name in SCRIPT_RANGES:
        if lo < 0x10000:
            table[lo:hi + 1] = SCRIPTS.index(name)
        else:
            high.append((lo, hi, SCRIPTS.index(name)))
    return table, high


_TABLE, _HIGH = _lookup()
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def _scripts_of(codes: np.ndarray) -> np.ndarray:
    script = _TABLE[np.minimum(codes, 0xFFFF)]
    script[codes > 0xFFFF] = -1
    for lo, hi, index in _HIGH:
        script[(codes >= lo) & (codes <= hi)] = index
    return script


def dominant_scripts(texts: Sequence[str], chunk: int = 20000) -> List[str]:
    """The script most of each text's letters are in (`none` for a text without letters). Japanese text (Kana with or
    without Han) is `Japanese`, Han without Kana is `Han`."""
    out: List[str] = [("Latin" if _ASCII_LETTER.search(t) else NO_LETTERS) if t.isascii() else "" for t in texts]
    others = [i for i, label in enumerate(out) if not label]  # only text beyond ASCII needs counting
    kana, han = SCRIPTS.index("Kana"), SCRIPTS.index("Han")
    names = np.array(SCRIPTS + [NO_LETTERS], dtype=object)
    for lo in range(0, len(others), chunk):
        rows = others[lo:lo + chunk]
        part = [texts[i][:SCRIPT_SAMPLE] for i in rows]
        sizes = np.fromiter((len(t) for t in part), dtype=np.int64, count=len(part))
        codes = np.frombuffer("".join(part).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        script = _scripts_of(codes)
        row = np.repeat(np.arange(len(part)), sizes)
        letters = script >= 0
        counts = np.bincount(row[letters] * len(SCRIPTS) + script[letters],
                             minlength=len(part) * len(SCRIPTS)).reshape(len(part), len(SCRIPTS))
        best = np.where(counts.sum(1) > 0, counts.argmax(1), len(SCRIPTS))
        labels = names[best]
        japanese = (counts[:, kana] > 0) & ((best == kana) | (best == han))
        labels[japanese] = "Japanese"
        for i, label in zip(rows, labels.tolist()):
            out[i] = label
    return out
