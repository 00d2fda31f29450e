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


def words(normalized: str) -> List[str]:
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
    """Sorted boundaries and the script index (or -1) of the interval each boundary starts."""
    starts, ids = [0], [-1]
    for lo, hi, name in sorted(SCRIPT_RANGES):
        starts += [lo, hi + 1]
        ids += [SCRIPTS.index(name), -1]
    return np.array(starts, dtype=np.int64), np.array(ids, dtype=np.int64)


_STARTS, _IDS = _lookup()


def dominant_scripts(texts: Sequence[str], chunk: int = 20000) -> List[str]:
    """The script most of each text's letters are in (`none` for a text without letters). Japanese text (Kana with or
    without Han) is `Japanese`, Han without Kana is `Han`."""
    out: List[str] = []
    kana, han = SCRIPTS.index("Kana"), SCRIPTS.index("Han")
    names = np.array(SCRIPTS + [NO_LETTERS], dtype=object)
    for lo in range(0, len(texts), chunk):
        part = [t[:SCRIPT_SAMPLE] for t in texts[lo:lo + chunk]]
        sizes = np.fromiter((len(t) for t in part), dtype=np.int64, count=len(part))
        codes = np.frombuffer("".join(part).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        script = _IDS[np.searchsorted(_STARTS, codes, side="right") - 1]
        row = np.repeat(np.arange(len(part)), sizes)
        letters = script >= 0
        counts = np.bincount(row[letters] * len(SCRIPTS) + script[letters],
                             minlength=len(part) * len(SCRIPTS)).reshape(len(part), len(SCRIPTS))
        best = np.where(counts.sum(1) > 0, counts.argmax(1), len(SCRIPTS))
        labels = names[best]
        japanese = (counts[:, kana] > 0) & ((best == kana) | (best == han))
        labels[japanese] = "Japanese"
        out += labels.tolist()
    return out
