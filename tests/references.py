"""Plain loop implementations that the vectorised losses are checked against."""

import math

import torch


def reference_supcon(z, clip_ids, labels=None, temperature=0.1, min_shared=1, weighted=False):
    """SupCon L_out written out term by term, in float64, from the formula in METHODS.md."""
    terms = [term for term in reference_supcon_terms(z, clip_ids, labels, temperature, min_shared, weighted) if term is not None]
    return sum(terms) / len(terms)


def reference_supcon_terms(z, clip_ids, labels=None, temperature=0.1, min_shared=1, weighted=False):
    """Each anchor's L_out term in float64 (None for an anchor without a positive, which does not count)."""
    z = torch.nn.functional.normalize(z.double(), dim=1).tolist()
    n = len(z)
    sim = [[sum(a * b for a, b in zip(z[i], z[j])) / temperature for j in range(n)] for i in range(n)]

    def target(i, j):
        same = 1.0 if clip_ids[i] == clip_ids[j] else 0.0
        if labels is None:
            return same
        yi, yj = labels[i], labels[j]
        shared = sum(1 for a, b in zip(yi, yj) if a and b)
        if weighted:
            size = sum(yi) + sum(yj)
            sup = 2 * shared / size if size else 0.0
            return min(1.0, same + sup)
        sup = 1.0 if shared >= min_shared and shared > 0 else 0.0
        return 1.0 if same + sup > 0 else 0.0

    terms = []
    for i in range(n):
        denominator = sum(math.exp(sim[i][k]) for k in range(n) if k != i)
        weights = [target(i, j) if j != i else 0.0 for j in range(n)]
        if sum(weights) == 0:
            terms.append(None)
            continue
        total = sum(w * -math.log(math.exp(sim[i][j]) / denominator) for j, w in enumerate(weights) if w)
        terms.append(total / sum(weights))
    return terms
