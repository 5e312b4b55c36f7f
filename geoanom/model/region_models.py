"""A model's region models: every tile model under a geohash prefix, merged, held and looked up.

A region is a geohash shorter than the tiles. Its model is the merge of the
tile models inside it, built up the prefix tree once, on first use, by
:func:`geoanom.model.pyramid.build_pyramid`, or given as fitted: a federated
fit's refined region models, fitted or loaded. :class:`RegionModels` holds
that state for :class:`~geoanom.model.core.AnomalyModel`, which copies it
with its tiles.
"""

from __future__ import annotations

from ..detectors import Ensemble
from ..errors import TileError
from ..geohash import enclosing
from .pyramid import build_pyramid


class RegionModels:
    """The region models of one set of tile models, built on first use unless given.

    Parameters
    ----------
    ensembles : dict of str to Ensemble
        The fitted tiles, by name (read, never changed).
    precision : int
        The tiles' geohash precision.
    built : dict of str to Ensemble, optional
        Region models by prefix, as fitted (federated) or saved; built from
        the tiles on the first :meth:`region` otherwise.

    Examples
    --------
    >>> regions = RegionModels(model.ensembles, model.precision)  # doctest: +SKIP
    >>> regions.built is None, sorted(regions.region("dj").detectors_)  # doctest: +SKIP
    (True, ['dpmm', 'gmm', 'iforest', 'kmeans'])
    """

    def __init__(self, ensembles: dict[str, Ensemble], precision: int, built: dict[str, Ensemble] | None = None):
        self._ensembles = ensembles
        self._precision = precision
        self._built = built

    @property
    def built(self) -> dict[str, Ensemble] | None:
        """The region models built or given so far, by prefix (the held dict itself); None before any is built."""
        return self._built

    def region(self, prefix: str) -> Ensemble:
        """The merged model of the region ``prefix``, building every region's on first use; a tile's own name gives its own.

        A prefix that is not shorter than the tiles, or holds no fitted
        tile, raises TileError naming it.

        Examples
        --------
        >>> RegionModels(model.ensembles, 3).region("dj").n_observations_  # doctest: +SKIP
        41760
        """
        if prefix in self._ensembles:
            return self._ensembles[prefix]
        if not 1 <= len(prefix) < self._precision:
            shorter = "1 character" if self._precision == 2 else f"1 to {self._precision - 1} characters"
            raise TileError(f"region '{prefix}' must be a geohash shorter than the tiles ({self._precision} "
                            f"characters), so of {shorter}.")
        if self._built is None:
            self._built = build_pyramid(self._ensembles, self._precision)
        if prefix not in self._built:
            raise TileError(f"region '{prefix}' holds no fitted tile; fitted tiles start with "
                            f"{', '.join(sorted({t[:len(prefix)] for t in self._ensembles})[:20])}.")
        return self._built[prefix]

    def smallest_holding(self, tile: str) -> Ensemble | None:
        """The model of the smallest region held so far that holds ``tile``; None if none does (nothing is built).

        Examples
        --------
        >>> RegionModels(model.ensembles, 3, built=federated.region_models).smallest_holding("djq")  # doctest: +SKIP
        Ensemble(...)
        """
        if self._built and (regions := enclosing(tile, self._built)):
            return self._built[regions[0]]
        return None
