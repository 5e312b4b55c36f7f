"""geoanom's version, in a module of its own.

Read by ``setup.cfg`` (``version = attr: geoanom._version.__version__``),
re-exported by ``geoanom/__init__.py``, and imported by modules that record
it (score provenance), which must not import the package face: it loads the
whole public API on first use.
"""

__version__ = "0.1.0"
