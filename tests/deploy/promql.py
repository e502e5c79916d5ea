"""The metric names a PromQL expression reads, for checking them against ``/metrics``.

Not a PromQL parser: it drops what cannot be a metric name (strings, label
matchers, durations, grouping label lists, numbers, Grafana variables) and the
words PromQL reserves, then takes every identifier not followed by ``(`` (a
function or an aggregation). That is enough for the expressions in deploy/, and
``test_metric_names_are_found_in_expressions`` pins what it finds.
"""

from __future__ import annotations

import re

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
_TOKEN = re.compile(r"(?P<number>\d[\w.]*)|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on"}
_KEYWORDS |= {"ignoring", "group_left", "group_right", "atan2", "start", "end"}


def metric_names(expression: str) -> set[str]:
    text = _STRINGS.sub(" ", expression)
    text = _VARIABLES.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for token in _TOKEN.finditer(text):
        name = token.group("ident")
        if name is None or token.group("call") or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names
