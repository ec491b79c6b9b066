"""Boosted decision stumps: an additive logistic model with one step function per feature.

Each round adds the one-split tree (a stump) that most lowers the log-loss to second order
(Newton boosting, as XGBoost and scikit-learn's ``HistGradientBoostingClassifier`` with depth-1
trees do). Stumps on the same feature add up to a step function of that feature, so the model is
``logit = bias + sum_j f_j(x_j)``: each feature's effect can be read, drawn and explained on its
own, and nothing has to be installed to apply it. scikit-learn's histogram booster fits the same
model but keeps its trees behind private attributes, and its public-tree booster
(``GradientBoostingClassifier``) chose worse stumps on the selector's data (models/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BoostSettings:
    """How the stumps are fitted."""

    rounds: int = 300  # stumps added
    learning_rate: float = 0.05  # shrinkage of each stump's leaf values
    l2: float = 1.0  # ridge penalty on a leaf's value (in the Newton step's denominator)
    min_leaf: int = 40  # fewest rows either side of a split
    max_bins: int = 255  # at most max_bins - 1 split points a feature: between its distinct
    # values, or between quantiles where it has more


@dataclass
class StepModel:
    """``logit = bias + sum_j values[j][i]``, ``i`` the number of ``thresholds[j]`` below
    ``x_j``. Each feature's values average zero over the fitting rows."""

    thresholds: list[np.ndarray]
    values: list[np.ndarray]
    bias: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        """The model's logit for each row of ``x``."""
        return self.bias + sum(
            v[np.searchsorted(t, x[:, j], side="left")]
            for j, (t, v) in enumerate(zip(self.thresholds, self.values, strict=True))
        )


def _split_points(column: np.ndarray, max_bins: int) -> np.ndarray:
    """Midpoints between the column's distinct values (between quantiles when too many)."""
    distinct = np.unique(column)
    if len(distinct) > max_bins:
        distinct = np.unique(np.quantile(column, np.linspace(0, 1, max_bins)))
    return (distinct[:-1] + distinct[1:]) / 2


def fit_stumps(x: np.ndarray, y: np.ndarray, settings: BoostSettings) -> StepModel:
    """Fit ``settings.rounds`` stumps to labels ``y`` (0/1) of rows ``x`` (no NaN)."""
    if np.isnan(x).any():
        raise ValueError("every row needs every feature (no NaN)")
    if not len(y) or y.min() == y.max():
        raise ValueError("the labels need both classes")
    n, d = x.shape
    cuts = [_split_points(x[:, j], settings.max_bins) for j in range(d)]
    bins = [np.searchsorted(c, x[:, j], side="left") for j, c in enumerate(cuts)]
    splittable = []  # the split points that leave min_leaf rows or more on each side
    for b, c in zip(bins, cuts, strict=True):
        left = np.cumsum(np.bincount(b, minlength=len(c) + 1))[:-1]
        splittable.append((left >= settings.min_leaf) & (n - left >= settings.min_leaf))
    steps = [np.zeros(len(c) + 1) for c in cuts]
    bias = float(np.log(y.mean() / (1 - y.mean())))
    logit = np.full(n, bias)
    lam = settings.l2
    for _ in range(settings.rounds):
        p = 1.0 / (1.0 + np.exp(-logit))
        g, h = p - y, p * (1 - p)
        g_all, h_all = g.sum(), h.sum()
        best_gain, best = 0.0, None
        for j in range(d):
            if not splittable[j].any():
                continue
            g_left = np.cumsum(np.bincount(bins[j], g, len(cuts[j]) + 1))[:-1]
            h_left = np.cumsum(np.bincount(bins[j], h, len(cuts[j]) + 1))[:-1]
            gain = (g_left**2 / (h_left + lam) + (g_all - g_left) ** 2 / (h_all - h_left + lam)
                    - g_all**2 / (h_all + lam))  # fmt: skip
            gain[~splittable[j]] = -np.inf
            i = int(np.argmax(gain))
            if gain[i] > best_gain:
                best_gain, best = gain[i], (j, i, g_left[i], h_left[i])
        if best is None:  # no split lowers the loss any more
            break
        j, i, g_left, h_left = best
        rate = settings.learning_rate
        low = -rate * g_left / (h_left + lam)
        high = -rate * (g_all - g_left) / (h_all - h_left + lam)
        steps[j][: i + 1] += low
        steps[j][i + 1 :] += high
        logit += np.where(bins[j] <= i, low, high)
    thresholds, values = [], []
    for c, b, s in zip(cuts, bins, steps, strict=True):
        centre = s[b].mean()  # the feature's average effect moves into the bias
        bias += centre
        keep = np.flatnonzero(s[1:] != s[:-1])  # splits where the step function changes
        thresholds.append(c[keep])
        values.append(np.append(s[keep], s[-1]) - centre)
    return StepModel(thresholds, values, bias)
