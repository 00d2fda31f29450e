"""Near-duplicate pairs: MinHash signatures of word 3-gram sets, banded into LSH buckets, candidates confirmed by
their exact Jaccard similarity, groups by union-find. Pure numpy, deterministic (no Python `hash`, fixed seeds).

Cost: one pass of tokenising plus NUM_PERM vectorised multiply-add-min passes over the shingles; exact Jaccard only
for candidate pairs. The LSH band width is the widest whose chance of making a pair at the similarity threshold a
candidate is at least 99% (rows per band 8, 4, 2 or 1 of the 64 signature values).
"""
import itertools
from typing import Callable, Dict, List, Tuple

import numpy as np

NUM_PERM = 64
SHINGLE = 3
RECALL = 0.99
CHUNK = 5000  # documents tokenised and signed at a time (bounds memory)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a 64-bit value to a well-spread 64-bit hash."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def band_rows(threshold: float) -> int:
    """Signature values per LSH band: the most (fewest false candidates) that still finds a pair of similarity
    `threshold` with probability >= RECALL."""
    for rows in (8, 4, 2):
        if 1 - (1 - threshold ** rows) ** (NUM_PERM // rows) >= RECALL:
            return rows
    return 1


class Shingler:
    """Word ids numbered by first appearance (stable for one run), and the hashed 3-grams of documents."""

    def __init__(self):
        self.vocab: Dict[str, int] = {}
        self.fresh = itertools.count(1)  # 0 pads documents shorter than a shingle

    def shingles(self, docs: List[List[str]]) -> Tuple[np.ndarray, np.ndarray]:
        """(hashes of every document's 3-grams, concatenated; start of each document's hashes). A document of fewer
        than 3 words has one shingle (its words, padded)."""
        docs = [d or ["\x00"] for d in docs]  # an empty document is one shingle of its own
        sizes = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        ids = np.fromiter(map(self.vocab.setdefault, itertools.chain.from_iterable(d + ["", ""] for d in docs),
                              self.fresh), dtype=np.uint64)  # "" never is a word: it only ends a document
        ids[np.cumsum(sizes + SHINGLE - 1) - 1] = 0
        ids[np.cumsum(sizes + SHINGLE - 1) - 2] = 0
        mixed = _mix(ids)
        per_doc = np.maximum(sizes - SHINGLE + 1, 1)
        first = np.concatenate([[0], np.cumsum(sizes + SHINGLE - 1)[:-1]])
        starts = np.concatenate([[0], np.cumsum(per_doc)[:-1]])
        pos = np.repeat(first - starts, per_doc) + np.arange(per_doc.sum())
        with np.errstate(over="ignore"):
            hashed = _mix(mixed[pos] * _K1 + mixed[pos + 1] * _K2 + mixed[pos + 2])
        return hashed, starts


def signatures(hashed: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """[documents, NUM_PERM] MinHash values: the minimum of (a * h + b) mod 2^64 over each document's shingles."""
    rng = np.random.default_rng(20240601)
    a = rng.integers(0, 2 ** 63, NUM_PERM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2 ** 63, NUM_PERM, dtype=np.uint64)
    sig = np.empty((len(starts), NUM_PERM), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(NUM_PERM):
            sig[:, k] = np.minimum.reduceat(hashed * a[k] + b[k], starts)
    return sig


def candidate_pairs(sig: np.ndarray, rows: int) -> np.ndarray:
    """[pairs, 2] (i < j) of documents that share a bucket in some band: neighbours in each bucket's row order."""
    found = []
    for band in range(NUM_PERM // rows):
        key = sig[:, band * rows]
        with np.errstate(over="ignore"):
            for col in range(band * rows + 1, (band + 1) * rows):
                key = _mix(key ^ sig[:, col])
        order = np.argsort(key, kind="stable")
        same = key[order[1:]] == key[order[:-1]]
        found.append(np.stack([order[:-1][same], order[1:][same]], axis=1))
    pairs = np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)
    return np.unique(np.sort(pairs, axis=1), axis=0)


def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def near_duplicate_groups(n: int, doc_words: Callable[[int], List[str]], threshold: float) -> np.ndarray:
    """Group label of each of n documents (the smallest index in its group): documents joined by a chain of pairs
    whose word 3-gram Jaccard similarity is >= threshold share a label."""
    shingler = Shingler()
    sig = np.empty((n, NUM_PERM), dtype=np.uint64)
    for lo in range(0, n, CHUNK):
        hashed, starts = shingler.shingles([doc_words(i) for i in range(lo, min(n, lo + CHUNK))])
        sig[lo:lo + len(starts)] = signatures(hashed, starts)
    pairs = candidate_pairs(sig, band_rows(threshold))
    parent = np.arange(n)
    if len(pairs):
        docs = np.unique(pairs)
        hashed, starts = shingler.shingles([doc_words(int(i)) for i in docs])
        ends = np.append(starts[1:], len(hashed))
        sets = {int(d): np.unique(hashed[s:e]) for d, s, e in zip(docs, starts, ends)}
        for i, j in pairs.tolist():
            a, b = sets[i], sets[j]
            common = len(np.intersect1d(a, b, assume_unique=True))
            if common / (len(a) + len(b) - common) >= threshold:
                ri, rj = _root(parent, i), _root(parent, j)
                parent[max(ri, rj)] = min(ri, rj)
    return np.array([_root(parent, i) for i in range(n)], dtype=np.int64)
