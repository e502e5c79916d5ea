"""Numeric kernels shared by the vectorised indicators.

Both kernels trade a little extra arithmetic for two properties a plain
``cumsum`` or Python loop lacks: they stay fast on long series (no per-element
Python work) and their rounding error does not grow with the series length.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = npt.NDArray[np.float64]

# Block length of the smoothing kernel: a BLOCK x BLOCK matrix product per block
# replaces BLOCK sequential steps; 128 keeps the matrix in cache.
BLOCK = 128

# Rolling sums restart their prefix sums every PREFIX_BLOCK values, so the
# cancellation error of ``prefix[i] - prefix[i - window]`` is bounded by the
# size of one block, not by the whole series.
PREFIX_BLOCK = 1024

# Rolling variances materialise (rows x window) deviations; this caps the rows
# per chunk so a long window over a long series stays within a few MB.
VARIANCE_CHUNK_ELEMENTS = 1 << 20


@functools.lru_cache(maxsize=64)
def _block_response(alpha: float) -> tuple[FloatArray, FloatArray]:
    """Weights of one block of inputs on its outputs, and the decay of the carried-in state."""
    decay = 1.0 - alpha
    lags = np.arange(BLOCK)
    lag = lags[None, :] - lags[:, None]  # lag[i, j] = j - i: input i's age at output j
    weights: FloatArray = np.where(lag >= 0, alpha * decay ** np.maximum(lag, 0), 0.0)
    carry: FloatArray = np.power(decay, lags + 1.0, dtype=np.float64)
    weights.flags.writeable = False
    carry.flags.writeable = False
    return weights, carry


def exponential_smoothing(values: FloatArray, seed: float, alpha: float) -> FloatArray:
    """``y[t] = (1 - alpha) * y[t-1] + alpha * values[t]`` with ``y[-1] = seed``.

    This is the EMA (``alpha = 2 / (n + 1)``) and Wilder (``alpha = 1 / n``)
    recursion. A Python loop costs ~17 ms for 60,000 values; solving each block
    of BLOCK values as one matrix product and carrying only the block ends
    through Python costs ~1 ms, with every weight ``<= 1`` so nothing overflows.
    """
    count = values.size
    if count == 0:
        return np.empty(0, dtype=np.float64)
    weights, carry = _block_response(alpha)
    blocks = -(-count // BLOCK)
    padded = np.zeros(blocks * BLOCK, dtype=np.float64)
    padded[:count] = values
    # Each block's outputs as if the state entering it were zero ...
    local = padded.reshape(blocks, BLOCK) @ weights
    # ... then the true entering states, one scalar step per block.
    block_decay = float(carry[-1])
    entering: list[float] = []
    state = seed
    for block_end in local[:, -1].tolist():
        entering.append(state)
        state = block_end + block_decay * state
    local += np.asarray(entering)[:, None] * carry[None, :]
    return local.ravel()[:count]


def rolling_mean(values: FloatArray, window: int) -> FloatArray:
    """Means of every full window, ``len(values) - window + 1`` of them."""
    count = values.size
    block = max(window, PREFIX_BLOCK)  # a window then spans at most two blocks
    blocks = -(-count // block)
    padded = np.zeros(blocks * block, dtype=np.float64)
    padded[:count] = values
    local = np.cumsum(padded.reshape(blocks, block), axis=1)
    block_totals = local[:, -1].tolist()
    prefix = local.ravel()  # prefix sums restarting at every block

    # sums[k] is the window ending at index k + window - 1; the one before the
    # first window is empty, so sums[0] is a prefix on its own.
    sums = prefix[window - 1 : count].copy()
    sums[1:] -= prefix[: count - window]
    # A window that starts in block b and ends in block b + 1 subtracted a
    # prefix of block b: add block b's total back (its end is not in the prefix).
    for b, total in enumerate(block_totals[:-1]):
        boundary = (b + 1) * block
        sums[max(boundary - window + 1, 1) : boundary + 1] += total
    result: FloatArray = sums / window
    return result


def rolling_population_std(values: FloatArray, window: int, means: FloatArray) -> FloatArray:
    """Population standard deviation of every full window, given the windows' means.

    Two-pass (deviations from each window's own mean) rather than
    ``E[x^2] - E[x]^2``: prices are large and their spread small, and the
    one-pass form loses most of its digits to cancellation, so a flat market
    would show a non-zero band width.
    """
    windows = sliding_window_view(values, window)
    variances = np.empty(windows.shape[0], dtype=np.float64)
    rows = max(1, VARIANCE_CHUNK_ELEMENTS // window)
    for start in range(0, windows.shape[0], rows):
        stop = start + rows
        deviations = windows[start:stop] - means[start:stop, None]
        variances[start:stop] = np.einsum("ij,ij->i", deviations, deviations)
    result: FloatArray = np.sqrt(variances / window)
    return result
