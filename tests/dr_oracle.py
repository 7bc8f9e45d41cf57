"""Brute-force DR loss written straight from the paper's formulas (DR loss,
Eq. 6-9, Table 3; SPEC section 2): a Python loop over images and explicit
sets of (anchor, class) pairs in float64. The test oracle for the
vectorised reference, the compiled op and the head."""
import math


def _softmax_expectation(values, sign, lam):
    """sum_j q_j p_j with q = softmax(sign * p / lam) over ``values``."""
    top = max(sign * p / lam for p in values)
    weights = [math.exp(sign * p / lam - top) for p in values]
    return sum(w * p for w, p in zip(weights, values)) / sum(weights)


def expectations(logits, labels, weights, lam_pos, lam_neg):
    """Lists (E-, E+) per image from nested lists/tensors."""
    e_neg, e_pos = [], []
    for img_logits, img_labels, img_weights in zip(logits, labels, weights):
        pos, neg = [], []
        for a, (row, label,
                w) in enumerate(zip(img_logits, img_labels, img_weights)):
            if w <= 0:
                continue
            for k, x in enumerate(row):
                p = 1 / (1 + math.exp(-float(x)))
                (pos if k == int(label) else neg).append(p)
        e_neg.append(_softmax_expectation(neg, 1, lam_neg) if neg else 0.0)
        e_pos.append(_softmax_expectation(pos, -1, lam_pos) if pos else 1.0)
    return e_neg, e_pos


def pair_loss(z, smooth, L, rho):
    if smooth == 'logistic':
        return math.log1p(math.exp(L * z)) / L
    if smooth == 'quadratic':
        if z >= rho:
            return z
        return (z + rho)**2 / (4 * rho) if z > -rho else 0.0
    return max(z, 0.0)


def dr_loss(logits,
            labels,
            weights,
            lam_pos,
            lam_neg,
            L,
            margin,
            tau,
            smooth='logistic',
            rho=0.5,
            pair='dr',
            pool='image'):
    """tau * mean over images (or over the one pooled batch) of l_i."""
    logits, labels, weights = (t.tolist() for t in (logits, labels, weights))
    if pool == 'batch':
        logits = [[row for img in logits for row in img]]
        labels = [[lab for img in labels for lab in img]]
        weights = [[w for img in weights for w in img]]
    e_neg, e_pos = expectations(logits, labels, weights, lam_pos, lam_neg)
    losses = []
    for i, (en, ep) in enumerate(zip(e_neg, e_pos)):
        if pair == 'dr':
            losses.append(pair_loss(en - ep + margin, smooth, L, rho))
            continue
        num_classes = len(logits[i][0])
        pos_scores = [
            1 / (1 + math.exp(-row[int(lab)]))
            for row, lab, w in zip(logits[i], labels[i], weights[i])
            if w > 0 and lab < num_classes
        ] or [1.0]
        losses.append(
            sum(
                pair_loss(en - p + margin, smooth, L, rho)
                for p in pos_scores) / len(pos_scores))
    return tau * sum(losses) / len(losses)
