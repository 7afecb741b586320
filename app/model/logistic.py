"""Binary logistic regression: one loss and gradient, two solvers that share it.

The model is ``p = sigmoid(w.x + b)``. Training minimises the mean log loss plus
an L2 penalty on the weights (never on the intercept)::

    J(w, b) = mean(log(1 + exp(z)) - y * z) + l2 / 2 * ||w||^2,   z = X w + b

which is the scikit-learn objective with ``l2 = 1 / (C * n_samples)``.

``log(1 + exp(z))`` is computed as ``logaddexp(0, z)`` and the sigmoid with
``expit``, so neither overflows nor takes ``log(0)`` for any ``|z|``.

The array module is a parameter (``xp``), so the same code runs on NumPy and,
where it is installed, on CuPy for training on a GPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

SOLVERS = ("lbfgs", "gd")

# The loss reads a large X in blocks of rows of about this size (measured best
# here for a 32 MiB L3 cache shared by two cores).
BLOCK_BYTES = 6 * 1024 * 1024

# Gradient descent works on the n x n Gram matrix up to this many examples
# (128 MiB of float64); above it, or when it would not save work, on X itself.
GRAM_MAX_EXAMPLES = 4096

DEFAULTS = {
    "solver": "lbfgs",
    "learning_rate": 0.005,
    "iterations": 2000,
    "l2": 0.01,
    "tol": 1e-6,
    "max_iter": 500,
    "device": "cpu",
}


def _sigmoid(z, xp):
    if xp is np:
        return special.expit(z)
    from cupyx.scipy import special as gpu_special

    return gpu_special.expit(z)


def loss_and_gradient(w, b, X, y, l2=0.0, xp=np):
    """Return ``(loss, grad_w, grad_b)`` of the penalised mean log loss.

    ``X`` may be float32 or float64; the products with ``X`` run in its dtype
    (no copy of ``X`` is made) and everything of length ``n`` or ``F`` is
    accumulated in float64.
    """
    n = X.shape[0]
    w_in_x_dtype = w.astype(X.dtype, copy=False)
    rows = _rows_per_block(X, xp)

    # A large X goes by blocks of rows small enough to stay in the CPU cache
    # between the two products with them: X is read from memory once per
    # evaluation instead of twice, and these passes are what training waits on.
    loss = 0.0
    grad_w = xp.zeros(X.shape[1], dtype=xp.float64)
    grad_b = 0.0
    for start in range(0, n, rows):
        block = X[start : start + rows]
        z = (block @ w_in_x_dtype).astype(xp.float64, copy=False) + b
        block_loss, residual = _margin_terms(z, y[start : start + rows], n, xp)
        loss += block_loss
        grad_w += block.T @ residual.astype(X.dtype, copy=False)
        grad_b += float(residual.sum())
    loss /= n

    if l2:
        loss += 0.5 * l2 * float(w @ w)
        grad_w += l2 * w
    return loss, grad_w, grad_b


def _rows_per_block(X, xp) -> int:
    """All of X at once when small (or on a GPU), else blocks of BLOCK_BYTES."""
    n = X.shape[0]
    if xp is not np or X.nbytes <= 4 * BLOCK_BYTES:
        return max(n, 1)
    return max(1, BLOCK_BYTES // (X.shape[1] * X.itemsize))


def _margin_terms(z, y, n, xp):
    """The summed log loss at margins ``z``, and its derivative over ``n``."""
    # log(1 + e^z) - y z, the negative log likelihood of one example.
    loss = float(xp.sum(xp.logaddexp(0.0, z) - y * z))
    residual = (_sigmoid(z, xp) - y) / n
    return loss, residual


@dataclass
class FitResult:
    weights: np.ndarray
    bias: float
    loss: float
    iterations: int
    converged: bool | None
    seconds: float
    costs: list = field(default_factory=list)


def fit_gd(X, y, learning_rate=0.005, iterations=2000, l2=0.0, progress=None, xp=np):
    """Batch gradient descent from zero weights and bias: the textbook method.

    ``costs`` holds ``(iteration, cost)`` every 100 iterations, the cost being
    the one computed before that iteration's update (the usual way the recipe
    prints it).
    """
    started = time.perf_counter()
    y = xp.asarray(y, dtype=xp.float64)
    n, n_features = X.shape
    if _gram_is_cheaper(n, n_features, iterations):
        w, b, costs = _gd_on_gram(X, y, learning_rate, iterations, l2, progress, xp)
    else:
        w, b, costs = _gd_on_features(X, y, learning_rate, iterations, l2, progress, xp)

    final_loss, _, _ = loss_and_gradient(w, b, X, y, l2, xp)
    return FitResult(
        weights=_to_numpy(w),
        bias=float(b),
        loss=final_loss,
        iterations=iterations,
        # A fixed number of steps: gradient descent has no convergence test.
        converged=None,
        seconds=time.perf_counter() - started,
        costs=costs,
    )


def _gram_is_cheaper(n, n_features, iterations) -> bool:
    """Whether n x n products beat two passes over X at every step.

    The Gram route makes ``X X^T`` once (about n^2 F) and then pays n^2 a
    step; the direct route pays 2 n F a step. The Gram matrix must also fit
    in a modest amount of memory.
    """
    if n > GRAM_MAX_EXAMPLES:
        return False
    return n * n_features + iterations * n < 2 * iterations * n_features


def _gd_on_features(X, y, learning_rate, iterations, l2, progress, xp):
    w = xp.zeros(X.shape[1], dtype=xp.float64)
    b = 0.0
    costs = []
    report_every = max(1, iterations // 100)

    for i in range(iterations):
        loss, grad_w, grad_b = loss_and_gradient(w, b, X, y, l2, xp)
        if i % 100 == 0:
            costs.append((i, loss))
        w -= learning_rate * grad_w
        b -= learning_rate * grad_b
        if progress is not None and (i + 1) % report_every == 0:
            progress((i + 1) / iterations, i + 1, loss)
    return w, b, costs


def _gd_on_gram(X, y, learning_rate, iterations, l2, progress, xp):
    """The same iterates, with the weights kept as ``w = X^T a``.

    From zero, every step adds a multiple of ``X^T r`` (and shrinks ``w``
    under the penalty), so ``w`` stays ``X^T a`` for some ``a`` of length n,
    and with ``K = X X^T``::

        z = X w + b = K a + b,    ||w||^2 = a . K a,
        w <- (1 - rate * l2) w - rate * X^T r   is   a <- (1 - rate * l2) a - rate * r

    Only rounding differs from the direct route.
    """
    gram = (X @ X.T).astype(xp.float64, copy=False)
    a = xp.zeros(X.shape[0], dtype=xp.float64)
    b = 0.0
    costs = []
    report_every = max(1, iterations // 100)
    shrink = 1.0 - learning_rate * l2

    for i in range(iterations):
        gram_a = gram @ a
        loss, residual = _margin_terms(gram_a + b, y, X.shape[0], xp)
        loss /= X.shape[0]
        if l2:
            loss += 0.5 * l2 * float(a @ gram_a)
        if i % 100 == 0:
            costs.append((i, loss))
        a = shrink * a - learning_rate * residual
        b -= learning_rate * float(residual.sum())
        if progress is not None and (i + 1) % report_every == 0:
            progress((i + 1) / iterations, i + 1, loss)

    w = (X.T @ a.astype(X.dtype, copy=False)).astype(xp.float64)
    return w, b, costs


def fit_lbfgs(X, y, l2=0.01, tol=1e-6, max_iter=500, progress=None, xp=np):
    """L-BFGS (scipy's L-BFGS-B, unbounded) on the same penalised loss.

    ``tol`` bounds the largest gradient component at convergence, as
    scikit-learn's ``tol`` does for its lbfgs solver.
    """
    started = time.perf_counter()
    y = xp.asarray(y, dtype=xp.float64)
    n_features = X.shape[1]
    iteration = 0
    last_loss = math.nan

    def objective(theta):
        nonlocal last_loss
        w = xp.asarray(theta[:n_features])
        loss, grad_w, grad_b = loss_and_gradient(w, float(theta[-1]), X, y, l2, xp)
        last_loss = loss
        grad = np.empty(n_features + 1)
        grad[:n_features] = _to_numpy(grad_w)
        grad[-1] = grad_b
        return loss, grad

    def on_iteration(intermediate_result):
        nonlocal iteration
        iteration += 1
        if progress is not None:
            progress(min(iteration / max_iter, 1.0), iteration, last_loss)

    result = optimize.minimize(
        objective,
        np.zeros(n_features + 1),
        jac=True,
        method="L-BFGS-B",
        callback=on_iteration,
        options={
            "maxiter": max_iter,
            "gtol": tol,
            "ftol": 64 * np.finfo(float).eps,
            "maxls": 50,
        },
    )
    return FitResult(
        weights=np.asarray(result.x[:n_features], dtype=np.float64),
        bias=float(result.x[-1]),
        loss=float(result.fun),
        iterations=int(result.nit),
        converged=bool(result.success),
        seconds=time.perf_counter() - started,
    )


def predict_proba(X, weights, bias, xp=np):
    """P(label 1) for each row of ``X``, as float64."""
    z = (X @ weights.astype(X.dtype, copy=False)).astype(xp.float64, copy=False)
    return _sigmoid(z + bias, xp)


def _to_numpy(array):
    if isinstance(array, np.ndarray):
        return array
    return array.get()
