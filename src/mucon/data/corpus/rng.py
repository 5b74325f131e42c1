"""Per-item random generators: every random choice about an item comes from a generator seeded by
(build seed, item name), never from a shared stream, so an item comes out the same whichever
items are built before it, in which process, or after a resume."""

import hashlib

import numpy as np


def item_rng(seed: int, *key: str) -> np.random.Generator:
    digest = hashlib.sha256("/".join(key).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([int(seed), *words])
