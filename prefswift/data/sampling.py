"""Which rows a dataset contributes: `#N` sampling and the --eval_ratio split, deterministic for a seed."""
import random
from typing import Callable, Dict, Optional, Tuple


def sample_rows(items: list, n: Optional[int], seed: int, *, repeat: bool = True) -> list:
    """N rows drawn with `seed` (order kept). N > len repeats every row N // len times plus a seeded sample
    of the remainder (ms-swift's `#N`), unless repeat=False (then all rows)."""
    if n is None or n < 0 or not items or n == len(items):
        return list(items)
    rng = random.Random(seed)
    size = len(items)
    if n < size:
        return [items[i] for i in sorted(rng.sample(range(size), n))]
    if not repeat:
        return list(items)
    return list(items) * (n // size) + [items[i] for i in sorted(rng.sample(range(size), n % size))]


def split_by_ratio(items: list, ratio: float, seed: int, key: Optional[Callable] = None) -> Tuple[list, list]:
    """(train, eval): round(n * ratio) of the n distinct items (at least 1, leaving at least 1 for training) picked
    with seed. `key`: items with the same key are one item — every copy of a duplicate lands on the same side."""
    keys = [key(x) if key else i for i, x in enumerate(items)]
    groups: Dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, len(groups))
    if ratio <= 0 or len(groups) < 2:
        return list(items), []
    n_eval = min(max(1, round(len(groups) * ratio)), len(groups) - 1)
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    group_of = [groups[k] for k in keys]
    return ([x for x, g in zip(items, group_of) if g not in held],
            [x for x, g in zip(items, group_of) if g in held])
