"""Helpers to read the spans the collector double recorded."""

from __future__ import annotations


def by_operation(spans) -> dict:
    found = {}
    for span in spans:
        found.setdefault(span["operation"], []).append(span)
    return found


def all_strings(span) -> list[str]:
    """Every string a span carries to LightStep: name, tags, log fields."""
    strings = [span["operation"]]
    strings += [f"{key}={value}" for key, value in span["tags"].items()]
    for log in span["logs"]:
        strings += [f"{key}={value}" for key, value in log.items()]
    strings += [f"{key}={value}" for key, value in span["reporter_tags"].items()]
    return strings
