"""SplitMix64, the keyed hash behind the sketches' sample keys and the isolation trees' split draws.

Written out because numpy's generators draw sequences, not a keyed hash of
a position: a key or a draw must not depend on chunking or batching.
"""

from __future__ import annotations

import numpy as np

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment, 2**64 / the golden ratio


def splitmix64_mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective mix of uint64 values (Steele, Lea and Flood 2014).

    Examples
    --------
    >>> import numpy as np
    >>> int(splitmix64_mix(np.array([0], dtype=np.uint64) + GOLDEN_GAMMA)[0]) == 0xE220A8397B1DCDAF
    True
    """
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
