"""Plain loop implementations that the vectorised losses are checked against."""

import math

import torch


def reference_supcon(z, clip_ids, labels=None, temperature=0.1, min_shared=1, weighted=False):
    """SupCon L_out written out term by term, in float64, from the formula in METHODS.md."""
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

    losses = []
    for i in range(n):
        denominator = sum(math.exp(sim[i][k]) for k in range(n) if k != i)
        weights = [target(i, j) if j != i else 0.0 for j in range(n)]
        if sum(weights) == 0:
            continue
        total = sum(w * -math.log(math.exp(sim[i][j]) / denominator) for j, w in enumerate(weights) if w)
        losses.append(total / sum(weights))
    return sum(losses) / len(losses)


def _bilinear(a, w, p):
    """a^T W p for plain lists."""
    return sum(a[i] * w[i][j] * p[j] for i in range(len(a)) for j in range(len(p)))


def reference_absence_aware(anchors, positives, present, weight):
    """MSCOL's loss written out from METHODS.md, in float64: columns are the present positives, then one
    null column (the mean of the absent positives) when any pair is absent; present anchors target their
    own positive, absent ones the null column. With every pair present this is COLA's bilinear loss."""
    anchors, positives, weight = anchors.double().tolist(), positives.double().tolist(), weight.double().tolist()
    present = [bool(flag) for flag in present]
    columns = [positives[k] for k in range(len(positives)) if present[k]]
    absent = [positives[k] for k in range(len(positives)) if not present[k]]
    if absent:
        columns.append([sum(values) / len(absent) for values in zip(*absent)])
    total = 0.0
    for k, anchor in enumerate(anchors):
        scores = [_bilinear(anchor, weight, column) for column in columns]
        target = sum(present[:k]) if present[k] else len(columns) - 1
        top = max(scores)
        log_denominator = top + math.log(sum(math.exp(s - top) for s in scores))
        total -= scores[target] - log_denominator
    return total / len(anchors)
