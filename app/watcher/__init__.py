"""Elasticsearch Watcher health: the report, its per-process cache, the remedy.

The HTTP layer (``app.api.watcher``) and the CLI (``app.watcher.cli``) call
only :func:`get_report`, :func:`invalidate_cache` and :func:`remediate`.
"""

from __future__ import annotations

import threading
import time

from app.observability.metrics import observe_watcher_report
from app.watcher.checks import build_report
from app.watcher.remedy import RemedyUnavailable
from app.watcher.remedy import remediate as _remediate

__all__ = ["RemedyUnavailable", "get_report", "invalidate_cache", "remediate"]

# One cluster per process, so the cache has one slot. Limitation: each uWSGI
# worker keeps its own, so N workers may each ask the cluster once per period.
_cache: dict = {}
_cache_lock = threading.Lock()


def get_report(settings, use_cache: bool = True) -> dict:
    """The report, at most WATCHER_CACHE_SECONDS old (0 turns the cache off)."""
    ttl = settings.watcher_cache_seconds
    if use_cache and ttl > 0:
        with _cache_lock:
            entry = _cache.get("report")
            if entry and time.monotonic() - entry[0] < ttl:
                return entry[1]

    # The cluster is asked outside the lock, so one slow answer never queues
    # every other request of this process behind it.
    report = build_report(settings)
    observe_watcher_report(report)
    if ttl > 0:
        with _cache_lock:
            _cache["report"] = (time.monotonic(), report)
    return report


def invalidate_cache() -> None:
    with _cache_lock:
        _cache.clear()


def remediate(settings, dry_run: bool) -> dict:
    try:
        return _remediate(settings, dry_run)
    finally:
        if not dry_run:
            invalidate_cache()
