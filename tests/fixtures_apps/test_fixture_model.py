"""The numpy softmax-regression model."""

from __future__ import annotations

import numpy as np
import pytest
from fl_common.data import load_partition
from fl_common.model import SoftmaxRegression


@pytest.fixture(scope="module")
def whole():
    return load_partition(0, 1)


def test_starts_at_zero_and_round_trips_weights():
    model = SoftmaxRegression()
    w, b = model.get_weights()
    assert w.shape == (64, 10) and b.shape == (10,)
    assert not w.any() and not b.any()
    new = [np.full((64, 10), 0.5), np.arange(10.0)]
    model.set_weights(new)
    got = model.get_weights()
    np.testing.assert_array_equal(got[0], new[0])
    np.testing.assert_array_equal(got[1], new[1])
    got[0][0, 0] = 99.0  # copies, not views
    assert model.get_weights()[0][0, 0] == 0.5
    with pytest.raises(ValueError):
        model.set_weights([np.zeros((10, 64)), np.zeros(10)])
    seeded = SoftmaxRegression(init_seed=3).get_weights()[0]
    np.testing.assert_array_equal(seeded, SoftmaxRegression(init_seed=3).get_weights()[0])
    assert seeded.any()


def test_fit_is_deterministic(whole):
    xtr, ytr, _, _ = whole
    runs = []
    for _ in range(2):
        model = SoftmaxRegression()
        model.fit(xtr, ytr, epochs=2, lr=0.1, batch_size=32, seed=5)
        runs.append(model.get_weights())
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    other = SoftmaxRegression()
    other.fit(xtr, ytr, epochs=2, lr=0.1, batch_size=32, seed=6)
    assert not np.array_equal(other.get_weights()[0], runs[0][0])


def test_learns_digits(whole):
    xtr, ytr, xte, yte = whole
    model = SoftmaxRegression()
    loss0, acc0 = model.evaluate(xte, yte)
    assert loss0 == pytest.approx(np.log(10))
    train_loss, train_acc = model.fit(xtr, ytr, epochs=10, lr=0.1, batch_size=32, seed=0)
    loss, acc = model.evaluate(xte, yte)
    assert acc > 0.92 and train_acc > 0.92
    assert loss < 0.5 * loss0 and train_loss < 0.5 * loss0
