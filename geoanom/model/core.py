"""AnomalyModel: the fitted tile ensembles of a grid, with scoring and persistence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..detectors import Ensemble
from ..features import Climatology
from ..tiling import tile_codes


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
    ):
        self.variables = variables
        self.climatology = climatology
        self.labels = labels
        self.ensembles = ensembles
        self.skipped = skipped
        self.detectors = tuple(detectors)
        self.attrs = attrs
        self.tile_codes, self.tile_names = tile_codes(labels.values)
        self._pyramid: dict[str, Ensemble] | None = None

    @property
    def tiles(self) -> list[str]:
        """Names of the fitted tiles, sorted."""
        return sorted(self.ensembles)

    @property
    def precision(self) -> int:
        """Geohash precision of the tiles."""
        return int(self.labels.attrs["precision"])

    def score(
        self, cube: xr.Dataset, tile: str | None = None, *, adapt: bool = False, adapt_every: int = 100,
        client: Any = None,
    ) -> xr.Dataset:
        """Score every observation of a cube, lazily.

        Parameters
        ----------
        cube : xarray.Dataset
            On the grid the model was fitted on, with the model's variables.
        tile : str, optional
            Score every cell with this one tile's ensemble (for example, how
            would Hudson Bay's model judge Florida?), or with a coarser
            region's merged model (a shorter geohash, see :meth:`region`).
            By default each cell is scored by its own tile.
        adapt : bool, default False
            Score in time order and adapt the tile models as they go (the
            paper's adaptive algorithm: running means and covariances), so a
            lasting change becomes normal. This changes the model in place and
            computes eagerly, one time chunk after another. With False (the
            default) the model is untouched and the result is lazy.
        adapt_every : int, default 100
            Adaptation speed: observations of a tile scored between updates.
        client : distributed.Client, optional
            Send the tile models to every worker of this cluster once, now,
            instead of inside the task graph. Use it for large models on a
            cluster (an isolation forest holds about 0.4 MB per tile, and the
            whole model would otherwise travel with the graph through the
            scheduler); the result must then be computed on this client.

        Returns
        -------
        xarray.Dataset
            ``irregularity`` (detector, time, lat, lon) float32, anomalous above
            1; ``anomalous`` (detector, time, lat, lon) bool; ``votes`` (time,
            lat, lon); ``ensemble`` (time, lat, lon) bool, the strict majority;
            ``fused_irregularity`` (time, lat, lon), the mean over families;
            ``tile`` (lat, lon). NaN input scores NaN and is never anomalous.
        """
        from .score import score_cube, score_cube_adapting

        if adapt:
            return score_cube_adapting(self, cube, tile, adapt_every)
        return score_cube(self, cube, tile, client)

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
        from .inputs import stack_variables
        from .score import check_same_grid

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
        from ..errors import TileError
        from .pyramid import build_pyramid

        if prefix in self.ensembles:
            return self.ensembles[prefix]
        if not 1 <= len(prefix) < self.precision:
            raise TileError(f"region '{prefix}' must be a geohash of 1 to {self.precision - 1} characters "
                            f"(the tiles have {self.precision}).")
        if self._pyramid is None:
            self._pyramid = build_pyramid(self.ensembles, self.precision)
        if prefix not in self._pyramid:
            raise TileError(f"region '{prefix}' holds no fitted tile; fitted tiles start with "
                            f"{', '.join(sorted({t[:len(prefix)] for t in self.ensembles})[:20])}.")
        return self._pyramid[prefix]

    def scoring_ensemble(self, tile: str) -> Ensemble | None:
        """The ensemble that scores a tile's cells: its own, or for a tile skipped
        in a federated fit, that of the smallest region holding it; None if neither."""
        if tile in self.ensembles:
            return self.ensembles[tile]
        if self.attrs.get("federated_rounds") and self._pyramid:
            for length in range(len(tile) - 1, 0, -1):
                if tile[:length] in self._pyramid:
                    return self._pyramid[tile[:length]]
        return None

    def tile_table(self) -> pd.DataFrame:
        """One row per tile: cells, training observations, status and thresholds; in a federated
        fit, also how much of each tile's gmm and kmeans came from its region (``*_region_share``)."""
        cells = pd.Series(self.labels.values.ravel()).value_counts()
        rows = []
        for tile in sorted(set(self.ensembles) | set(self.skipped)):
            row: dict[str, Any] = {"tile": tile, "cells": int(cells.get(tile, 0))}
            ensemble = self.ensembles.get(tile)
            if ensemble is None:
                row.update(status="skipped", reason=self.skipped[tile])
            else:
                row.update(status="fitted", observations=getattr(ensemble, "n_observations_", np.nan))
                for name, detector in ensemble.detectors_.items():
                    row[f"{name}_threshold"] = detector.threshold_
                    row[f"{name}_threshold_source"] = detector.threshold_source_
                row.update(self._region_shares(ensemble))
            rows.append(row)
        return pd.DataFrame(rows).set_index("tile")

    def _region_shares(self, ensemble: Ensemble) -> dict[str, float]:
        """In a federated fit, how much each adapted family of a tile came from its region's model."""
        from .personalise import FAMILIES, region_share

        relevance = float(self.attrs.get("federated_relevance") or 0.0)
        if not relevance:
            return {}
        return {f"{name}_region_share": region_share(ensemble.detectors_[name], ensemble.n_observations_, relevance)
                for name in FAMILIES if name in ensemble.detectors_}

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

    def save(self, path: str) -> None:
        """Save as plain data: ``.npz`` (one file) or ``.zarr`` (a store); never pickle."""
        from .store import save_model

        save_model(self, path)

    def __repr__(self) -> str:
        return (
            f"<AnomalyModel: {len(self.ensembles)} tiles fitted, {len(self.skipped)} skipped, "
            f"precision {self.precision}, detectors {', '.join(self.detectors)}, "
            f"variables {', '.join(self.variables)}, trained {self.attrs.get('training_start')} "
            f"to {self.attrs.get('training_end')}>"
        )
