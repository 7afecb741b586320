"""The loss, its gradient and both solvers, against known results."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from app.model import logistic


def cat_matrix(cat_data):
    images = cat_data["images"]
    return images.reshape(images.shape[0], -1) / 255.0, cat_data["labels"].astype(float)


def test_gd_reproduces_the_published_cat_result(cat_data):
    X, y = cat_matrix(cat_data)

    result = logistic.fit_gd(X, y, learning_rate=0.005, iterations=2000)

    costs = dict(result.costs)
    assert round(costs[1900], 6) == 0.140872
    assert round(costs[0], 6) == round(np.log(2), 6)
    predicted = logistic.predict_proba(X, result.weights, result.bias) >= 0.5
    assert int((predicted == (y == 1)).sum()) == 207
    assert round(float((predicted == (y == 1)).mean()), 4) == 0.9904


# Limitation: with weaker penalties (C >= 0.05) on these 209 examples of 12288
# features the intercept lies in a nearly flat valley; both solvers stop on
# their ftol with intercepts up to about 1e-4 apart (depending on the BLAS
# thread count), while weights still agree to 1e-5.
@pytest.mark.parametrize("C", [0.01, 0.03])
def test_lbfgs_matches_scikit_learn_on_the_cat_photos(cat_data, C):
    X, y = cat_matrix(cat_data)
    n = X.shape[0]

    ours = logistic.fit_lbfgs(X, y, l2=1.0 / (C * n), tol=1e-10, max_iter=20000)
    oracle = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=20000).fit(
        X, y
    )

    # Relative to the coefficient vector: single weights near zero have no
    # meaningful relative error of their own.
    difference = np.linalg.norm(ours.weights - oracle.coef_[0])
    assert difference / np.linalg.norm(oracle.coef_[0]) < 1e-4
    assert ours.bias == pytest.approx(oracle.intercept_[0], rel=1e-4)
    np.testing.assert_allclose(
        logistic.predict_proba(X, ours.weights, ours.bias),
        oracle.predict_proba(X)[:, 1],
        rtol=1e-4,
    )


def test_lbfgs_matches_scikit_learn_on_overlapping_classes():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(400, 6))
    y = (X @ rng.normal(size=6) + rng.normal(scale=2.0, size=400) > 0).astype(float)
    C = 0.5

    ours = logistic.fit_lbfgs(X, y, l2=1.0 / (C * 400), tol=1e-10, max_iter=5000)
    oracle = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=5000).fit(X, y)

    np.testing.assert_allclose(ours.weights, oracle.coef_[0], rtol=1e-4)
    assert ours.bias == pytest.approx(oracle.intercept_[0], rel=1e-4)
    assert ours.converged


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 5))
    y = (rng.random(50) > 0.5).astype(float)
    w = rng.normal(size=5)
    b = 0.3
    l2 = 0.2

    _, grad_w, grad_b = logistic.loss_and_gradient(w, b, X, y, l2)

    step = 1e-6
    for i in range(5):
        shift = np.zeros(5)
        shift[i] = step
        up, _, _ = logistic.loss_and_gradient(w + shift, b, X, y, l2)
        down, _, _ = logistic.loss_and_gradient(w - shift, b, X, y, l2)
        assert grad_w[i] == pytest.approx((up - down) / (2 * step), rel=1e-6)
    up, _, _ = logistic.loss_and_gradient(w, b + step, X, y, l2)
    down, _, _ = logistic.loss_and_gradient(w, b - step, X, y, l2)
    assert grad_b == pytest.approx((up - down) / (2 * step), rel=1e-6)


def test_loss_is_finite_and_silent_for_huge_margins():
    X = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    y = np.array([1.0, 0.0, 0.0, 1.0])  # two right, two badly wrong
    w = np.array([1e6])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            loss, grad_w, grad_b = logistic.loss_and_gradient(w, 0.0, X, y)
            probabilities = logistic.predict_proba(X, w, 0.0)

    # Each wrong example costs |z| = 1e6; the right ones cost nothing.
    assert loss == pytest.approx(0.5e6)
    assert np.isfinite(grad_w).all() and np.isfinite(grad_b)
    np.testing.assert_array_equal(probabilities, [1.0, 0.0, 1.0, 0.0])


def test_float32_features_give_the_float64_answer():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(300, 8))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(float)

    wide = logistic.fit_lbfgs(X, y, l2=0.01, tol=1e-8)
    narrow = logistic.fit_lbfgs(X.astype(np.float32), y, l2=0.01, tol=1e-8)

    np.testing.assert_allclose(narrow.weights, wide.weights, rtol=1e-4, atol=1e-5)
    assert narrow.loss == pytest.approx(wide.loss, rel=1e-6)


def test_gd_reports_progress_up_to_one():
    X = np.eye(4)
    y = np.array([0.0, 1.0, 0.0, 1.0])
    seen = []

    logistic.fit_gd(X, y, iterations=300, progress=lambda f, i, loss: seen.append(f))

    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert len(seen) == 100


def test_gd_on_the_gram_matrix_takes_the_same_steps_as_on_the_features():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 300))
    y = (X[:, 0] > 0).astype(float)
    assert logistic._gram_is_cheaper(40, 300, 500)

    gram = logistic._gd_on_gram(X, y, 0.05, 500, 0.01, None, np)
    direct = logistic._gd_on_features(X, y, 0.05, 500, 0.01, None, np)

    np.testing.assert_allclose(gram[0], direct[0], rtol=0, atol=1e-12)
    assert gram[1] == pytest.approx(direct[1], abs=1e-12)
    assert [i for i, _ in gram[2]] == [0, 100, 200, 300, 400]
    for (_, cost), (_, expected) in zip(gram[2], direct[2], strict=True):
        assert cost == pytest.approx(expected, abs=1e-12)


def test_gd_stays_on_the_features_when_the_gram_matrix_would_cost_more():
    assert not logistic._gram_is_cheaper(20000, 12288, 2000)
    assert not logistic._gram_is_cheaper(1000, 10, 2000)


def test_a_large_matrix_scored_in_blocks_gives_the_same_loss(monkeypatch):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(203, 50))
    y = (rng.random(203) < 0.4).astype(float)
    w = rng.normal(size=50)

    whole = logistic.loss_and_gradient(w, 0.3, X, y, l2=0.01)
    monkeypatch.setattr(logistic, "BLOCK_BYTES", 7 * 50 * 8)
    assert logistic._rows_per_block(X, np) == 7
    blocked = logistic.loss_and_gradient(w, 0.3, X, y, l2=0.01)

    assert blocked[0] == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(blocked[1], whole[1], rtol=0, atol=1e-12)
    assert blocked[2] == pytest.approx(whole[2], rel=1e-12)
