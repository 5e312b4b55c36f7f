"""Small dense linear algebra for the compiled kernels (numba): one Cholesky factorisation for all of them.

The batched EM (``detectors/mixture.py``) factorises each component's
covariance, the climatology's IRLS (``features/irls.py``) each cell's
weighted normal equations: matrices of a few to a dozen rows, too small for
LAPACK's per-call overhead, so both factorise them inline in their loops.

numba's on-disk cache (``cache=True``) is invalidated only by changes to
the file that defines a compiled function, not to the files of the
functions it calls: after editing this module, clear the callers' caches
(their ``__pycache__/*.nbi``) before timing or testing them.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def cholesky_in_place(matrix: np.ndarray, q: int) -> bool:  # pragma: no cover - compiled
    """Lower Cholesky factor of the leading q x q block of a symmetric matrix, in place of its lower triangle.

    Only the lower triangle (diagonal included) of the block is read and
    written; the rest of ``matrix`` is left as it was.

    Parameters
    ----------
    matrix : ndarray (n, n), n >= q
        Float64; its lower triangle holds the symmetric matrix.
    q : int
        Size of the leading block to factorise.

    Returns
    -------
    bool
        False, the block partly overwritten, if it is not (numerically)
        positive definite: the caller raises, naming what it factorised.

    Examples
    --------
    >>> a = np.array([[4.0, 0.0], [2.0, 5.0]])
    >>> cholesky_in_place(a, 2), a.tolist()
    (True, [[2.0, 0.0], [1.0, 2.0]])
    >>> cholesky_in_place(np.array([[1.0, 0.0], [2.0, 1.0]]), 2)
    False
    """
    for a in range(q):
        for b in range(a + 1):
            value = matrix[a, b]
            for k in range(b):
                value -= matrix[a, k] * matrix[b, k]
            if a == b:
                if not value > 0:
                    return False
                matrix[a, a] = np.sqrt(value)
            else:
                matrix[a, b] = value / matrix[b, b]
    return True
