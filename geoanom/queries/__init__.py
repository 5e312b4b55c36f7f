"""Anomaly queries on a scored result (the reference paper's section 3.4).

What a scientist asks of a cube of scores: which events happened (connected
flagged cells in time and space), which observations match a question, how
the features evolved before an event, and whether neighbouring or similar
tiles agree.
"""

from .events import event_labels, events
from .inspect import query

__all__ = ["event_labels", "events", "query"]
