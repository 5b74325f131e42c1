"""Plain loop implementations that the vectorised losses are checked against."""

import math

import torch


def reference_supcon(z, clip_ids, labels=None, temperature=0.1, min_shared=1, weighted=False, items=None, kept=None):
    """SupCon L_out written out term by term, in float64, from the formula in METHODS.md."""
    terms = [term for term in reference_supcon_terms(z, clip_ids, labels, temperature, min_shared, weighted, items, kept)
             if term is not None]
    return sum(terms) / len(terms)


def reference_supcon_terms(z, clip_ids, labels=None, temperature=0.1, min_shared=1, weighted=False, items=None,
                           kept=None):
    """Each anchor's L_out term in float64 (None for an anchor without a positive, which does not count).

    ``items``: embeddings of one store item are positives too (the same source recording); ``kept``: rows
    left False are no anchor, no positive and no negative."""
    z = torch.nn.functional.normalize(z.double(), dim=1).tolist()
    n = len(z)
    sim = [[sum(a * b for a, b in zip(z[i], z[j])) / temperature for j in range(n)] for i in range(n)]
    kept = [True] * n if kept is None else [bool(k) for k in kept]

    def target(i, j):
        same = 1.0 if clip_ids[i] == clip_ids[j] or (items is not None and items[i] == items[j]) else 0.0
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
        denominator = sum(math.exp(sim[i][k]) for k in range(n) if k != i and kept[k])
        weights = [target(i, j) if j != i and kept[j] else 0.0 for j in range(n)]
        if sum(weights) == 0 or not kept[i]:
            terms.append(None)
            continue
        total = sum(w * -math.log(math.exp(sim[i][j]) / denominator) for j, w in enumerate(weights) if w)
        terms.append(total / sum(weights))
    return terms


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _unit(v):
    norm = math.sqrt(_dot(v, v))
    return [x / norm for x in v]


def reference_hard_negative(anchors, positives, negatives, temperature):
    """PEMR's paper objective term by term in float64: for anchor i, its positive over every other
    clip's anchor and positive plus its own hard negative."""
    a = [_unit(row) for row in anchors.double().tolist()]
    p = [_unit(row) for row in positives.double().tolist()]
    n = [_unit(row) for row in negatives.double().tolist()]
    losses = []
    for i in range(len(a)):
        terms = [math.exp(_dot(a[i], a[k]) / temperature) for k in range(len(a)) if k != i]
        terms += [math.exp(_dot(a[i], p[k]) / temperature) for k in range(len(a))]
        terms.append(math.exp(_dot(a[i], n[i]) / temperature))
        losses.append(-math.log(math.exp(_dot(a[i], p[i]) / temperature) / sum(terms)))
    return sum(losses) / len(losses)


def reference_cross_correlation(anchors, positives, negatives, off_diagonal_weight, negative_weight, eps=1e-5):
    """PEMR's released objective term by term in float64, from the formula in METHODS.md."""
    def batch_norm(z):
        rows, dims = len(z), len(z[0])
        out = [[0.0] * dims for _ in range(rows)]
        for d in range(dims):
            mean = sum(z[b][d] for b in range(rows)) / rows
            variance = sum((z[b][d] - mean) ** 2 for b in range(rows)) / rows
            for b in range(rows):
                out[b][d] = (z[b][d] - mean) / math.sqrt(variance + eps)
        return out

    a, p, n = (batch_norm(z.double().tolist()) for z in (anchors, positives, negatives))
    rows, dims = len(a), len(a[0])

    def correlation(x, y, d, e):
        return sum(x[b][d] * y[b][e] for b in range(rows)) / rows

    loss = 0.0
    for d in range(dims):
        for e in range(dims):
            c = correlation(a, p, d, e)
            loss += (1 - c) ** 2 if d == e else off_diagonal_weight * c**2
        loss += negative_weight * correlation(a, n, d, d) ** 2
    return loss
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


def reference_sogclr_step(first, second, items, stored, temperature, gamma, eps=1e-8):
    """One SogCLR step the release's way (libauc's GCLoss_v1), one item and one view at a time.

    first, second: lists of embedding rows (the two views of each item); items: each row's item;
    stored: {item: u} before the step (a missing item was never seen). Returns (loss, {item: u after}).
    """
    first, second = [_unit(v) for v in first], [_unit(v) for v in second]
    count = len(first)
    new_u = {}
    total = 0.0
    for i in range(count):
        previous = stored.get(items[i], 0.0)
        rate = gamma if previous > 0 else 1.0
        item_terms = []
        for own, other in ((first, second), (second, first)):
            negatives = [other[j] for j in range(count) if j != i] + [own[j] for j in range(count) if j != i]
            similarities = [_dot(own[i], n) for n in negatives]
            estimate = sum(math.exp(s / temperature) for s in similarities) / (2 * (count - 1))
            u = (1 - rate) * previous + rate * estimate
            weighted = sum(math.exp(s / temperature) / max(u, eps) * s for s in similarities) / (2 * (count - 1))
            total += -_dot(own[i], other[i]) + weighted
            item_terms.append(u)
        new_u.setdefault(items[i], []).append(sum(item_terms) / 2)
    return total / count, {item: sum(us) / len(us) for item, us in new_u.items()}
