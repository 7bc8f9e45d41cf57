"""Brute-force DR loss written straight from the paper's formulas (Qian et
al., DR Loss, CVPR 2020: Eq. 6-9, Table 3, appendix A): a Python loop over
images and explicit sets of (anchor, class) pairs in float64. The test
oracle for the vectorised reference, the compiled op and the head."""
import math


def sigmoid(x):
    """sigmoid(x) in float64 for any finite x (exp of -|x| only)."""
    e = math.exp(-abs(float(x)))
    return 1 / (1 + e) if x >= 0 else e / (1 + e)


def sigmoid_slope(x):
    """d sigmoid / dx = e / (1 + e)^2, e = exp(-|x|), for any finite x."""
    e = math.exp(-abs(float(x)))
    return e / (1 + e)**2


def _softmax_weights(values, sign, lam):
    """softmax(sign * p / lam) over ``values``."""
    top = max(sign * p / lam for p in values)
    weights = [math.exp(sign * p / lam - top) for p in values]
    total = sum(weights)
    return [w / total for w in weights]


def _softmax_expectation(values, sign, lam):
    """sum_j q_j p_j with q = softmax(sign * p / lam) over ``values``."""
    return sum(q * p
               for q, p in zip(_softmax_weights(values, sign, lam), values))


def _sets(img_logits, img_labels, img_weights):
    """The image's positives and negatives as {(a, k): logit}."""
    pos, neg = {}, {}
    for a, (row, label,
            w) in enumerate(zip(img_logits, img_labels, img_weights)):
        if w <= 0:
            continue
        for k, x in enumerate(row):
            (pos if k == int(label) else neg)[a, k] = float(x)
    return pos, neg


def expectations(logits, labels, weights, lam_pos, lam_neg):
    """Lists (E-, E+) per image from nested lists/tensors."""
    e_neg, e_pos = [], []
    for img in zip(logits, labels, weights):
        pos, neg = _sets(*img)
        neg_p = [sigmoid(x) for x in neg.values()]
        pos_p = [sigmoid(x) for x in pos.values()]
        e_neg.append(_softmax_expectation(neg_p, 1, lam_neg) if neg else 0.0)
        e_pos.append(_softmax_expectation(pos_p, -1, lam_pos) if pos else 1.0)
    return e_neg, e_pos


def expectation_grads(logits, labels, weights, lam_pos, lam_neg, g_neg, g_pos):
    """d(sum_i g_neg[i] E-_i + g_pos[i] E+_i) / d logits as nested lists,
    from appendix A: dE/dp_j = q_j (1 + s (p_j - E) / lam), s = +1 for the
    negatives, -1 for the positives, times dp/dx."""
    grads = []
    for i, img in enumerate(zip(logits, labels, weights)):
        grad = [[0.0] * len(row) for row in img[0]]
        pos, neg = _sets(*img)
        for elements, sign, lam, g in ((neg, 1, lam_neg, g_neg[i]),
                                       (pos, -1, lam_pos, g_pos[i])):
            if not elements:
                continue
            probs = [sigmoid(x) for x in elements.values()]
            qs = _softmax_weights(probs, sign, lam)
            expectation = sum(q * p for q, p in zip(qs, probs))
            for (a, k), q, p in zip(elements, qs, probs):
                grad[a][k] = g * q * (1 + sign * (p - expectation) / lam) * \
                    sigmoid_slope(elements[a, k])
        grads.append(grad)
    return grads


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
            sigmoid(row[int(lab)])
            for row, lab, w in zip(logits[i], labels[i], weights[i])
            if w > 0 and lab < num_classes
        ] or [1.0]
        losses.append(
            sum(
                pair_loss(en - p + margin, smooth, L, rho)
                for p in pos_scores) / len(pos_scores))
    return tau * sum(losses) / len(losses)
