"""AnomalyModel: the fitted tile ensembles of a grid, with scoring and persistence.

The model's modules depend one way: ``fit`` builds an AnomalyModel (this
module), which scores itself with ``score`` and saves and loads itself with
``store``; neither of those imports this module but for type annotations.
The class is the model's face: what it does lives in modules of its own,
which it calls: the cube it is given (``given_cube``), its region models
(``region_models``), its tile table (``tile_summary``), consensus and tile
similarity (``consensus``), feature trajectories (``trajectory``).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..detectors import Ensemble
from ..errors import GeoanomError
from ..features import Climatology
from ..features.pipeline import stack_variables
from ..tiling import tile_codes
from .consensus import consensus_partners, consensus_request, similar_tiles, tile_distances
from .given_cube import given_cube
from .region_models import RegionModels
from .score import check_same_grid, score_cube, score_cube_adapting
from .store import read_model, save_model
from .tile_summary import tile_table
from .trajectory import feature_trajectory


class AnomalyModel:
    """One detector ensemble per geohash tile of a grid, ready to score cubes.

    Built by :func:`geoanom.fit` or :func:`geoanom.load_model`.

    Attributes
    ----------
    variables : list of str
        The modelled variables (features are each one and its anomaly).
    detectors : tuple of str
        Detector families of every tile's ensemble.
    labels : xarray.DataArray
        Geohash tile of every grid cell.
    ensembles : dict of str to Ensemble
        The fitted tiles.
    skipped : dict of str to str
        Tiles with too little data, and why. Their cells score as NaN.
    climatology : Climatology
        Per-cell, per-season means and spreads of the training period.

    Scoring never changes a model: :meth:`score` leaves it as it is, and
    :meth:`adapt` returns an adapted copy.
    """

    def __init__(
        self,
        *,
        variables: list[str],
        climatology: Climatology,
        labels: xr.DataArray,
        ensembles: dict[str, Ensemble],
        skipped: dict[str, str],
        detectors: tuple[str, ...],
        attrs: dict[str, Any],
        regions: dict[str, Ensemble] | None = None,
    ):
        """See the class's attributes; ``regions``: region models by prefix, as fitted (federated) or saved."""
        self.variables = variables
        self.climatology = climatology
        self.labels = labels
        self.ensembles = ensembles
        self.skipped = skipped
        self.detectors = tuple(detectors)
        self.attrs = attrs
        self.tile_codes, self.tile_names = tile_codes(labels.values)
        self._regions = RegionModels(ensembles, self.precision, regions)  # built on first use of region() unless given

    @property
    def tiles(self) -> list[str]:
        """Names of the fitted tiles, sorted."""
        return sorted(self.ensembles)

    @property
    def precision(self) -> int:
        """Geohash precision of the tiles."""
        return int(self.labels.attrs["precision"])

    @property
    def region_models(self) -> dict[str, Ensemble]:
        """The models of coarser regions built so far, by geohash prefix.

        In a federated fit, the refined region models it was fitted with;
        otherwise those :meth:`region` has built (empty before its first use).
        """
        return dict(self._regions.built or {})

    def score(self, cube: xr.Dataset, tile: str | None = None, *, client: Any = None,
              consensus: str | None = None) -> xr.Dataset:
        """Score every observation of a cube, lazily; the model is left as it is.

        The tile models are copied into the result's graph, so the result
        means the same whenever it is computed. To let the models follow a
        lasting change as they score, use :meth:`adapt`.

        Parameters
        ----------
        cube : xarray.Dataset
            On the grid the model was fitted on, with the model's variables.
        tile : str, optional
            Score every cell with this one tile's ensemble (for example, how
            would Hudson Bay's model judge Florida?), or with a coarser
            region's merged model (a shorter geohash, see :meth:`region`).
            By default each cell is scored by its own tile.
        client : distributed.Client, optional
            Send each tile's models to this cluster once, now, as tasks of
            their own, instead of inside the task graph: the graph holds only
            their keys, and each scoring task fetches only its own tiles'
            models (475 tiles: a graph of 0.1 MiB, not 86 MiB). The result
            must then be computed on this client.
        consensus : {"neighbours", "similar", "region:PREFIX"}, optional
            Also ask other tiles' ensembles about every observation (see
            :meth:`consensus_partners`) and add ``consensus``. Each partner
            scores the observation again: this costs up to 8 (neighbours), 5
            (similar) or the region's tiles minus one extra ensemble scorings
            per observation (benchmarks/consensus.py: 4 to 11 times the time
            of the score alone). Each block still receives only the models
            it needs: its tiles' and their partners'.

        Returns
        -------
        xarray.Dataset
            ``irregularity`` (detector, time, lat, lon) float32, anomalous above
            1; ``anomalous`` (detector, time, lat, lon) bool; ``votes`` (time,
            lat, lon); ``ensemble`` (time, lat, lon) bool, the strict majority;
            ``fused_irregularity`` (time, lat, lon), the mean over families;
            ``tile`` (lat, lon). NaN input scores NaN and is never anomalous.
            With ``consensus``, also ``consensus`` (time, lat, lon) float32 in
            [0, 1]: the share of the partner tiles whose ensemble flags the
            observation's own feature vector by the same strict majority as
            ``ensemble``; NaN where the tile has no partner with a model.
            Filter flags with it as ``ensemble & (consensus >= 0.5)``.

        Examples
        --------
        >>> result = model.score(cube.sel(time=slice("1960", None)))  # doctest: +SKIP
        >>> float(result["ensemble"].mean())  # doctest: +SKIP
        0.012
        >>> agreed = model.score(cube, consensus="neighbours")  # doctest: +SKIP
        >>> confirmed = agreed["ensemble"] & (agreed["consensus"] >= 0.5)  # doctest: +SKIP
        """
        cube = self._given(cube)
        if consensus is None:
            return score_cube(self, cube, tile, client)
        return score_cube(self, cube, None, client, *consensus_request(self, consensus, tile))

    def consensus_partners(self, consensus: str) -> dict[str, list[str]]:
        """The tiles whose ensembles a consensus asks about each tile's observations (tiles without any left out).

        ``consensus``: ``"neighbours"`` (the up to 8 geohash neighbours with a
        model), ``"similar"`` (the 5 nearest by :meth:`tile_distances`) or
        ``"region:PREFIX"`` (every other fitted tile under the geohash
        ``PREFIX``, shorter than the tiles, for the tiles under it only).
        A bad spec, or a region without a fitted tile, raises GeoanomError.

        Examples
        --------
        >>> model.consensus_partners("neighbours")["dj"]  # doctest: +SKIP
        ['dh', 'dk', 'dm', 'dn', 'dq']
        """
        return consensus_partners(self, consensus)

    def tile_distances(self) -> xr.DataArray:
        """Distances (tile, other_tile) between the fitted tiles' feature distributions: which regions behave alike.

        The Bhattacharyya distance between the Gaussians matching the first
        two moments of each tile's model (its gmm, else dpmm, else kmeans,
        else the isolation forest's reservoir sample), in the data's units:
        symmetric, zero for identical distributions, finite, never saturating
        (see :mod:`geoanom.queries.similarity`); about a second for all pairs of
        2,000 tiles. The tiles' geohash centres are ``tile_lat``, ``tile_lon``.

        Examples
        --------
        >>> model.tile_distances().sel(tile="dj").idxmax().item()  # doctest: +SKIP
        'f8'
        """
        return tile_distances(self)

    def similar_tiles(self, tile: str, k: int = 5) -> pd.DataFrame:
        """The ``k`` fitted tiles whose feature distributions are closest to a fitted ``tile``'s.

        A table indexed by ``rank`` (1 = most similar) with ``tile``,
        ``distance`` (as :meth:`tile_distances`), ``hellinger`` (in [0, 1])
        and the tile's geohash centre ``lat``, ``lon``. A tile without a model
        raises TileError naming it.

        Examples
        --------
        >>> model.similar_tiles("dj", k=1)  # doctest: +SKIP
             tile  distance  hellinger      lat     lon
        rank
        1      dn  0.000164   0.012819  36.5625 -84.375
        """
        return similar_tiles(self, tile, k)

    def features(self, cube: xr.Dataset, *, tile: str | list[str] | None = None, time: Any = None,
                 cell: tuple[float, float] | None = None) -> pd.DataFrame:
        """The feature vectors the ensembles score for some cells over a time range, with their scores.

        "What changed before the event": one row per (time, cell), a column per
        feature, and each vector's irregularity per family, fused score, votes
        and flag, as :meth:`score` gives them (see
        :func:`geoanom.model.trajectory.feature_trajectory`).

        Parameters
        ----------
        cube : xarray.Dataset
            On the model's grid, with its variables.
        tile : str or list of str, optional
            Geohashes: a tile, a region (a shorter prefix) or a finer area.
        time : slice or label, optional
            As for ``cube.sel(time=...)``; all times by default.
        cell : (lat, lon), optional
            Instead of ``tile``: the grid cell nearest this point.

        Examples
        --------
        >>> before = model.features(cube, tile="dj", time=slice("2010-01", "2010-08"))  # doctest: +SKIP
        >>> ga.query(result, tile="dj", flagged=True, features=before)  # doctest: +SKIP
        """
        return feature_trajectory(self, self._given(cube), tile=tile, time=time, cell=cell)

    def adapt(self, cube: xr.Dataset, tile: str | None = None, *,
              adapt_every: int = 100) -> tuple[xr.Dataset, "AnomalyModel"]:
        """Score a cube in time order while the tile models adapt, and return the adapted model.

        The paper's adaptive algorithm: every ``adapt_every`` observations of
        a tile move its components' counts, means and covariances (running
        means and covariances), so a lasting change becomes normal over
        time. This model is left as it is; the adaptation happens on a copy,
        which is returned. Computed eagerly, one time chunk after another.

        Parameters
        ----------
        cube : xarray.Dataset
            On the grid the model was fitted on, with the model's variables.
        tile : str, optional
            As for :meth:`score`: one tile's or region's model for every cell.
        adapt_every : int, default 100
            Adaptation speed: observations of a tile scored between updates.

        Returns
        -------
        result : xarray.Dataset
            As from :meth:`score`, in memory.
        adapted : AnomalyModel
            A copy of this model whose tile (or region) models adapted to
            the cube; score later periods with it to carry on.

        Examples
        --------
        >>> result, adapted = model.adapt(cube.sel(time=slice("1960", None)), adapt_every=50)  # doctest: +SKIP
        >>> later = adapted.score(cube.sel(time=slice("2050", None)))  # doctest: +SKIP
        """
        if isinstance(adapt_every, bool) or not isinstance(adapt_every, (int, np.integer)) or adapt_every < 1:
            raise GeoanomError(f"adapt_every must be a whole number of observations, at least 1, got {adapt_every!r}"
                               " (a very large number never adapts).")
        adapted = self.copy()
        return score_cube_adapting(adapted, self._given(cube), tile, adapt_every), adapted

    def _given(self, cube: xr.Dataset | xr.DataArray) -> xr.Dataset:
        """The model's variables of a cube to score, checked, on the model's grid (see :mod:`.given_cube`)."""
        return given_cube(cube, self.variables, self.labels)

    def copy(self) -> "AnomalyModel":
        """A copy whose tile and region models are its own (the grid and climatology, never changed, are shared).

        Examples
        --------
        >>> twin = model.copy()  # doctest: +SKIP
        >>> twin.ensembles["dj"] is model.ensembles["dj"]  # doctest: +SKIP
        False
        """
        # one deepcopy for both, so that a region model shared by several tiles stays shared
        ensembles, regions = copy.deepcopy((self.ensembles, self._regions.built))
        return AnomalyModel(variables=list(self.variables), climatology=self.climatology, labels=self.labels,
                            ensembles=ensembles, skipped=dict(self.skipped), detectors=self.detectors,
                            attrs=copy.deepcopy(self.attrs), regions=regions)

    def anomalies(self, cube: xr.Dataset) -> xr.DataArray:
        """Standardised anomalies of a cube from this model's climatology, lazily.

        The departure of every observation from its cell's expected value at
        that time, in units of the cell's spread: the per-cell z-score done
        right (robust, seasonal, every season covered). A cube on the model's
        grid with its variables.

        Returns
        -------
        DataArray (variable, time, *spatial), float64

        Examples
        --------
        >>> z = model.anomalies(cube.sel(time="2010"))  # doctest: +SKIP
        >>> (abs(z) > 3).mean().item()  # doctest: +SKIP
        0.004
        """
        cube = self._given(cube)
        check_same_grid(self, cube)
        anomaly = self.climatology.standardise(stack_variables(cube, self.variables))
        return anomaly.rename("anomaly").assign_attrs(
            long_name="standardised anomaly from the model's climatology", units="1", **self.provenance())

    def region(self, prefix: str) -> Ensemble:
        """The federated model of a coarser region: every tile model inside it, merged.

        Tile models are merged up the geohash prefix tree (precision p - 1,
        ..., 1) by tree reductions, once, on first use; see
        :mod:`geoanom.model.pyramid`. ``model.score(cube, tile=prefix)``
        scores with it.

        Parameters
        ----------
        prefix : str
            A geohash shorter than the tiles, e.g. ``"dj"`` for tiles of
            precision 3; a tile's own name gives its own ensemble.
        """
        return self._regions.region(prefix)

    def scoring_ensemble(self, tile: str) -> Ensemble | None:
        """The ensemble that scores a tile's cells: its own, or for a tile skipped
        in a federated fit, that of the smallest region holding it; None if neither."""
        if tile in self.ensembles:
            return self.ensembles[tile]
        if self.attrs.get("federated_rounds"):
            return self._regions.smallest_holding(tile)
        return None

    def tile_table(self) -> pd.DataFrame:
        """One row per tile: cells, training observations, status and thresholds; in a federated
        fit, also how much of each tile's gmm and kmeans came from its region (``*_region_share``)."""
        return tile_table(self)

    def provenance(self, scored_by: str | None = None) -> dict[str, str]:
        """Attributes recorded on every output variable."""
        out = {
            "geoanom_detectors": ",".join(self.detectors),
            "geoanom_variables": ",".join(self.variables),
            "geoanom_precision": str(self.precision),
            "geoanom_training_period": f"{self.attrs.get('training_start')} to {self.attrs.get('training_end')}",
            "geoanom_seed": str(self.attrs.get("seed")),
        }
        if scored_by is not None:
            out["geoanom_scored_by_tile"] = scored_by
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Save as plain data: ``.npz`` (one file) or ``.zarr`` (a store); never pickle.

        Examples
        --------
        >>> model.save("model.npz"); model = geoanom.load_model("model.npz")  # doctest: +SKIP
        """
        save_model(self, path)

    def __repr__(self) -> str:
        return (
            f"<AnomalyModel: {len(self.ensembles)} tiles fitted, {len(self.skipped)} skipped, "
            f"precision {self.precision}, detectors {', '.join(self.detectors)}, "
            f"variables {', '.join(self.variables)}, trained {self.attrs.get('training_start')} "
            f"to {self.attrs.get('training_end')}>"
        )


def load_model(path: str | os.PathLike) -> AnomalyModel:
    """Load a model saved by :meth:`AnomalyModel.save` (no pickle is ever read).

    Every array and threshold is checked (:func:`geoanom.model.store.check_tree`),
    so a damaged file is refused here rather than scoring NaN later.

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` file or ``.zarr`` store.

    Returns
    -------
    AnomalyModel

    Raises
    ------
    ModelFileError
        In one sentence naming the file, for a missing, corrupt, edited or
        truncated model.

    Examples
    --------
    >>> model = ga.load_model("model.npz")  # doctest: +SKIP
    """
    return AnomalyModel(**read_model(path))
