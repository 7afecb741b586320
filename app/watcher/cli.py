"""``python -m app watcher-check``: the health report for cron jobs."""

from __future__ import annotations

import argparse
import json
import sys

from app.settings import Settings, SettingsError
from app.watcher.checks import build_report

EXIT_CODES = {"green": 0, "yellow": 1, "red": 2, "unknown": 2}


def watcher_check_main(argv: list[str], settings: Settings | None = None) -> int:
    """Print the report as JSON; exit 0 green, 1 yellow, 2 red or unknown."""
    parser = argparse.ArgumentParser(
        prog="python -m app watcher-check",
        description="Check Elasticsearch Watcher once and print the report as JSON. "
        "Exit status: 0 green, 1 yellow, 2 red or unknown. The cluster comes from "
        "ELASTICSEARCH_URL and the other ELASTICSEARCH_* variables.",
    )
    parser.parse_args(argv)

    if settings is None:
        try:
            settings = Settings.from_env()
        except SettingsError as error:
            print(f"watcher-check: {error}", file=sys.stderr)
            return 2

    # A cron job wants the cluster as it is now, so the cache is not used.
    report = build_report(settings)
    print(json.dumps(report, indent=2))
    return EXIT_CODES.get(report["status"], 2)
