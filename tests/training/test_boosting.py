"""Boosted stumps: the step functions they fit, and what they refuse."""

from __future__ import annotations

import numpy as np
import pytest

from training.boosting import BoostSettings, StepModel, fit_stumps


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Feature 0 decides the label (above 0.3), feature 1 is noise."""
    x = np.random.default_rng(seed).uniform(size=(n, 2))
    return x, (x[:, 0] > 0.3).astype(float)


def test_stumps_find_the_step_that_decides_and_ignore_noise() -> None:
    x, y = _data()
    model = fit_stumps(x, y, BoostSettings(rounds=100, learning_rate=0.3, min_leaf=10))
    logit = model.logit(x)
    assert ((logit > 0) == (y == 1)).all()
    deciding, noise = model.values
    assert np.ptp(deciding) > 5 * np.ptp(noise)
    assert any(abs(t - 0.3) < 0.02 for t in model.thresholds[0])
    x_new, y_new = _data(seed=1)
    assert ((model.logit(x_new) > 0) == (y_new == 1)).mean() > 0.97


def test_each_feature_averages_zero_and_values_change_at_every_threshold() -> None:
    x, y = _data()
    model = fit_stumps(x, y, BoostSettings(rounds=50, min_leaf=10))
    for j, (t, v) in enumerate(zip(model.thresholds, model.values, strict=True)):
        assert len(v) == len(t) + 1
        assert np.all(np.diff(t) > 0) and np.all(v[1:] != v[:-1])
        assert abs(v[np.searchsorted(t, x[:, j], side="left")].mean()) < 1e-9


def test_no_split_leaves_fewer_rows_than_min_leaf() -> None:
    x, y = _data(n=100)
    model = fit_stumps(x, y, BoostSettings(min_leaf=60))  # no split can keep 60 on each side
    assert [len(t) for t in model.thresholds] == [0, 0]
    assert model.bias == pytest.approx(np.log(y.mean() / (1 - y.mean())))


def test_a_split_may_leave_exactly_min_leaf_rows_on_a_side() -> None:
    x = np.arange(100.0)[:, None]
    y = (x[:, 0] >= 60).astype(float)  # the one clean split leaves 40 rows above it
    assert 59.5 in fit_stumps(x, y, BoostSettings(rounds=5, min_leaf=40)).thresholds[0]
    assert 59.5 not in fit_stumps(x, y, BoostSettings(rounds=5, min_leaf=41)).thresholds[0]


def test_a_value_on_a_threshold_takes_the_lower_step() -> None:
    model = StepModel([np.array([0.5])], [np.array([-1.0, 1.0])], 0.0)
    assert model.logit(np.array([[0.5], [0.500001], [0.0]])).tolist() == [-1.0, 1.0, -1.0]


def test_missing_features_and_one_class_are_refused() -> None:
    x, y = _data(n=50)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_stumps(x, y, BoostSettings())
    with pytest.raises(ValueError, match="both classes"):
        fit_stumps(np.ones((5, 1)), np.zeros(5), BoostSettings())
