"""Figure layout from the domain's shape: how map panels are arranged, sized and labelled.

A global strip (360 degrees of longitude, 10 of latitude) and a square
region need different figures. The map's shape on the page is its width
over its height in plate carree, true at mid-latitude (:func:`page_ratio`).
Panels of a wide map (wider than :data:`STACK_ABOVE`) are stacked, each
with its colour bar below it, on a page of fixed width; other maps stand
side by side, colour bars at their right, on a page of fixed height. A map
so wide (or so tall) that it would be a thin line is stretched in latitude
(or longitude) to :data:`MAX_RATIO` (or ``1 / MAX_RATIO``), and its axis
label says by how much. Constrained layout keeps titles, labels, colour
bars and the legend from overlapping, and the legend of the flagged
outline goes below the panels, outside the data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .cells import MapCells, map_extent

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STACK_ABOVE = 2.0  # maps wider than this (width / height on the page) are stacked, one panel per row
MAX_RATIO = 6.0  # wider maps are stretched in latitude to this shape; taller ones in longitude to its inverse
PAGE_WIDTH = 11.0  # inches: the width of a figure of stacked panels
MAP_HEIGHT = 5.0  # inches: the height of maps side by side
MAX_PAGE_WIDTH = 18.0  # inches: maps side by side shrink to keep the figure within this
# inches around a map for its title, tick labels, axis labels and colour bar
STACKED_MARGIN = (1.3, 1.55)  # (beside, above and below)
SIDE_MARGIN = (2.2, 1.3)
MIN_SLOT_WIDTH = 4.5  # inches: a narrow map's panel is at least this wide, for its title and colour bar
INCHES_PER_TICK = 0.9  # a longitude label ("150°W") and the space between two
CHARACTERS_PER_INCH = 9.5  # of a title (12 points)
TITLE_PAD = 12.0  # points between a panel and its title
SAVE_DPI = 110  # of every PNG written with path=
LAYOUT_PAD = 0.1  # inches around each part of a figure (constrained layout's default: 0.04)


def page_ratio(cells: MapCells) -> float:
    """Width over height of the map in plate carree, true at mid-latitude (before any stretch).

    Examples
    --------
    >>> import xarray as xr
    >>> from geoanom.plot.cells import map_cells
    >>> strip = xr.Dataset(coords={"lat": [-4.5, 4.5], "lon": np.arange(-179.5, 180.0)})
    >>> round(page_ratio(map_cells(strip)), 1)
    20.0
    """
    west, east, south, north = map_extent(cells)
    return (east - west) * true_shape(south, north) / max(north - south, 1e-9)


def true_shape(south: float, north: float) -> float:
    """Plate carree's x/y scale at mid-latitude: the inverse of the aspect that draws true shapes there."""
    return float(np.cos(np.radians(np.clip((south + north) / 2, -70.0, 70.0))))


@dataclass(frozen=True)
class Layout:
    """How the map panels of one figure are arranged.

    Attributes
    ----------
    stacked : bool
        Panels one per row (wide maps), else side by side.
    figsize : (float, float)
        Inches.
    stretch : float
        Latitude exaggeration: 1 draws true shapes at mid-latitude; above 1
        latitude is stretched (a thin strip), below 1 longitude is.
    """

    stacked: bool
    figsize: tuple[float, float]
    stretch: float
    map_width: float = 5.0
    slot_width: float = 7.0

    def wrap(self, text: str, width: float | None = None) -> str:
        """``text`` broken into lines that fit ``width`` inches (default: one panel's slot), kept lines kept."""
        import textwrap

        characters = max(int((width or self.slot_width) * CHARACTERS_PER_INCH), 20)
        return "\n".join(textwrap.fill(line, characters) for line in text.splitlines())

    @property
    def colour_bar(self) -> dict:
        """Keywords of ``Figure.colorbar`` for one panel: below a stacked panel, else at its right."""
        if self.stacked:
            return {"location": "bottom", "shrink": 0.6, "aspect": 40, "pad": 0.02}
        return {"location": "right", "shrink": 0.8}

    def figure(self) -> Figure:
        """A bare Figure (no pyplot) of this size, with constrained layout and some room between its parts."""
        from matplotlib.figure import Figure
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        return Figure(figsize=self.figsize, layout=ConstrainedLayoutEngine(h_pad=LAYOUT_PAD, w_pad=LAYOUT_PAD))

    def grid(self, n_panels: int) -> tuple[int, int]:
        """(rows, columns) of the panels."""
        return (n_panels, 1) if self.stacked else (1, n_panels)

    def shape(self, ax: Axes) -> None:
        """Set the panel's aspect (plate carree times the stretch), as many longitude ticks as fit, a wrapped title.

        An axis label says if the map is stretched.
        """
        (south, north) = ax.get_ylim()
        ax.set_aspect(self.stretch / true_shape(south, north), adjustable="box")
        ax.xaxis.get_major_locator().set_params(nbins=max(int(self.map_width / INCHES_PER_TICK), 2))
        ax.set_title(self.wrap(ax.get_title()), pad=TITLE_PAD)  # clear of the top latitude label
        if self.stretch > 1.0 + 1e-9:
            ax.set_ylabel(f"{ax.get_ylabel()} (stretched {self.stretch:.1f}x)")
        elif self.stretch < 1.0 - 1e-9:
            ax.set_xlabel(f"{ax.get_xlabel()} (stretched {1 / self.stretch:.1f}x)")


def map_layout(cells: MapCells, n_panels: int) -> Layout:
    """The layout of ``n_panels`` maps of ``cells``: stacked or side by side, the figure's size, any stretch.

    Examples
    --------
    >>> import xarray as xr
    >>> from geoanom.plot.cells import map_cells
    >>> strip = xr.Dataset(coords={"lat": [-4.5, 4.5], "lon": np.arange(-179.5, 180.0)})
    >>> layout = map_layout(map_cells(strip), 2)
    >>> layout.stacked, round(layout.stretch, 2)
    (True, 3.33)
    """
    true_ratio = page_ratio(cells)
    ratio = float(np.clip(true_ratio, 1.0 / MAX_RATIO, MAX_RATIO))
    stretch = true_ratio / ratio
    if ratio > STACK_ABOVE:
        beside, around = STACKED_MARGIN
        height = n_panels * ((PAGE_WIDTH - beside) / ratio + around) + 0.7  # + the title and legend
        return Layout(True, (PAGE_WIDTH, height), stretch, PAGE_WIDTH - beside, PAGE_WIDTH - beside)
    beside, around = SIDE_MARGIN
    map_height = min(MAP_HEIGHT, (MAX_PAGE_WIDTH / n_panels - beside) / ratio)
    slot = max(map_height * ratio + beside, MIN_SLOT_WIDTH)
    return Layout(False, (n_panels * slot + 0.3, map_height + around + 0.9), stretch, map_height * ratio, slot - 1.2)


def fit_title(ax: Axes, text: str, fontsize: str = "medium") -> None:
    """Title ``ax`` with ``text`` broken into lines as wide as the panel, so no line runs off the figure.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure(figsize=(4, 3)).subplots()
    >>> fit_title(ax, "tile 88: " + "a long title " * 8)
    >>> len(ax.get_title().splitlines()) > 1
    True
    """
    import textwrap

    from matplotlib.font_manager import FontProperties

    points = FontProperties(size=fontsize).get_size_in_points()
    inches = ax.figure.get_figwidth() * ax.get_position().width
    characters = max(int(inches * CHARACTERS_PER_INCH * 12.0 / points), 20)
    ax.set_title("\n".join(textwrap.fill(line, characters) for line in text.splitlines()), fontsize=fontsize)


def outline_legend(fig: Figure, label: str = "ensemble flags an anomaly (outlined cells)") -> None:
    """The legend of the flagged cells' outline, below the panels (constrained layout keeps room for it)."""
    from matplotlib.lines import Line2D

    fig.legend(handles=[Line2D([], [], color="black", linewidth=0.8, label=label)],
               loc="outside lower center", fontsize="small", frameon=False)


def plain_log_ticks(colour_bar) -> None:
    """Label a log colour bar with plain numbers (0.5, 1, 2) at 1-2-5 steps, or whole decades for wide ranges.

    Matplotlib's default labels (``3 x 10^-1``) crowd and overlap along a horizontal bar.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = colour_bar.norm.vmin, colour_bar.norm.vmax
    subs = (1.0, 2.0, 5.0) if np.log10(high / low) <= 2.5 else (1.0,)
    axis = colour_bar.ax.xaxis if colour_bar.orientation == "horizontal" else colour_bar.ax.yaxis
    colour_bar.set_ticks(LogLocator(base=10.0, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def saved(fig: Figure, path: "str | os.PathLike | None") -> Figure:
    """``fig``, written to ``path`` first when one is given (every figure function of geoanom.plot ends here).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> saved(Figure(), None).__class__.__name__
    'Figure'
    """
    if path is None:
        return fig
    if hasattr(path, "write"):  # a file object: the caller owns it
        fig.savefig(path, dpi=SAVE_DPI)
        return fig
    from matplotlib import rcParams

    from ..atomic import replacing

    # written beside the path first, so a failed drawing or a full disk leaves an earlier picture whole; the
    # format is the path's suffix (the temporary's ends in .tmp.<suffix>), matplotlib's default without one
    kind = os.path.splitext(os.fspath(path))[1][1:] or rcParams["savefig.format"]
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=SAVE_DPI, format=kind)
    return fig

