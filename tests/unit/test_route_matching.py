"""The local host's route matching, made cheap for every request (patterns compiled once, templates
that cannot fit the path's segment count skipped), matches exactly what the plain algorithm matches."""
from __future__ import annotations

import itertools
import re
from urllib.parse import unquote

import pytest

from devtools.local_host.routing import Parameter, RouteTable, RouteTemplate

TEMPLATES = [
    "", "health", "admin/{*rest}", "files/{**path}", "files/{name}.{ext}", "tenants/{tenantId}/profiles",
    "tenants/{tenantId:guid}/profiles/{profileId}", "tenants/{tenantId}/profiles/{profileId}/validations",
    "items/{id:int:min(1)}", "items/{id?}", "pages/{page=1}/{size=10}", "a/{b?}/c", "v{version:int}/things",
    "search/{term:alpha:maxlength(4)}", "{any}", "{first}/{second?}", "x/{rest=def}/{*tail}",
]
SEGMENTS = ["", "health", "HEALTH", "admin", "files", "report.pdf", "tenants", "11111111-1111-4111-8111-111111111111",
            "profiles", "validations", "items", "7", "0", "pages", "2", "a", "c", "v2", "things", "search", "abc",
            "abcde", "x", "%41", "a%2Fb", "K\u212a"]


def reference_match(template: RouteTemplate, path_segments: list[str]) -> dict[str, str] | None:
    """The matching as it was before the fast paths (a regex built per literal segment and call)."""
    values: dict[str, str] = {}
    for i, segment in enumerate(template.segments):
        param = segment.parts[0] if len(segment.parts) == 1 and isinstance(segment.parts[0], Parameter) else None
        if param and param.catch_all:
            rest = "/".join(unquote(s) for s in path_segments[i:])
            if rest == "" and param.default is None:
                return values
            value = rest or param.default
            if value and not param.accepts(value):
                return None
            values[param.name] = value
            return values
        if i >= len(path_segments):
            if param and (param.optional or param.default is not None):
                if param.default is not None:
                    values[param.name] = param.default
                continue
            return None
        text = unquote(path_segments[i])
        if param:
            if not param.accepts(text):
                return None
            values[param.name] = text
            continue
        pattern = "".join(f"(?P<{p.name}>.+)" if isinstance(p, Parameter) else re.escape(p) for p in segment.parts)
        match = re.fullmatch(pattern, text, re.IGNORECASE | re.DOTALL)
        params = [p for p in segment.parts if isinstance(p, Parameter)]
        if not match or not all(p.accepts(match.group(p.name)) for p in params):
            return None
        values.update({p.name: match.group(p.name) for p in params})
    return values if len(path_segments) <= len(template.segments) else None


#: Fewer segments for the longer paths (the product grows fast), still fitting every long template.
LONG_PATH_SEGMENTS = ["", "admin", "tenants", "11111111-1111-4111-8111-111111111111", "profiles", "validations",
                      "pages", "2", "x", "a%2Fb"]


def paths(longest: int = 4):
    for count in range(0, longest + 1):
        segments = SEGMENTS if count < 3 else LONG_PATH_SEGMENTS
        yield from (list(p) for p in itertools.product(segments, repeat=count))


@pytest.mark.parametrize("text", TEMPLATES)
def test_each_template_matches_what_the_plain_algorithm_matches(text):
    template = RouteTemplate.parse(text)
    for path in paths():
        assert template.match(path) == reference_match(template, path), (text, path)


def test_the_table_finds_the_same_route_for_every_path():
    entries = [(RouteTemplate.parse(t), frozenset({"GET"}) if i % 2 else None, t) for i, t in enumerate(TEMPLATES)]
    table = RouteTable(entries)
    for path in paths(longest=3):
        raw = "/".join(path)
        expected = None
        for template, methods, target in table._entries:
            values = reference_match(template, [s for s in raw.strip("/").split("/")] if raw.strip("/") else [])
            if values is not None and (methods is None or "POST" in methods):
                expected = (target, values)
                break
        match, _ = table.find(raw, "POST")
        assert (match and (match.target, match.values)) == expected, raw


def test_segment_counts_bound_what_a_template_can_match():
    assert RouteTemplate.parse("tenants/{t}/profiles/{p}").segment_counts == (4, 4)
    assert RouteTemplate.parse("pages/{page=1}/{size=10}").segment_counts == (1, 3)
    assert RouteTemplate.parse("a/{b?}/c").segment_counts == (3, 3)
    assert RouteTemplate.parse("admin/{*rest}").segment_counts == (1, float("inf"))
    assert RouteTemplate.parse("").segment_counts == (0, 0)
