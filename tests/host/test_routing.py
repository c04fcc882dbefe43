"""ASP.NET route templates: parsing, constraints, optional/default/catch-all, precedence."""
from __future__ import annotations

import pytest

from devtools.local_host.routing import RouteTable, RouteTemplate, RouteTemplateError, split_path


def match(template: str, path: str):
    return RouteTemplate.parse(template).match(split_path(path))


@pytest.mark.parametrize("template, path, expected", [
    ("tenants/{tenantId}/profiles", "tenants/t1/profiles", {"tenantId": "t1"}),
    ("tenants/{tenantId}/profiles", "TENANTS/t1/Profiles/", {"tenantId": "t1"}),
    ("tenants/{tenantId}/profiles", "tenants/t1", None),
    ("tenants/{tenantId}/profiles", "tenants/t1/profiles/x", None),
    ("n/{n:int}", "n/12", {"n": "12"}),
    ("n/{n:int}", "n/1.5", None),
    ("n/{n:int}", "n/99999999999", None),
    ("n/{n:long}", "n/99999999999", {"n": "99999999999"}),
    ("n/{n:int:min(10)}", "n/9", None),
    ("n/{n:int:min(10)}", "n/10", {"n": "10"}),
    ("n/{n:range(1,3)}", "n/4", None),
    ("n/{n:max(3)}", "n/3", {"n": "3"}),
    ("x/{x:alpha}", "x/Abc", {"x": "Abc"}),
    ("x/{x:alpha}", "x/ab1", None),
    ("x/{x:bool}", "x/True", {"x": "True"}),
    ("x/{x:double}", "x/1.5e3", {"x": "1.5e3"}),
    ("x/{x:decimal}", "x/abc", None),
    ("x/{x:datetime}", "x/2026-03-01", {"x": "2026-03-01"}),
    ("x/{x:minlength(3)}", "x/ab", None),
    ("x/{x:maxlength(3)}", "x/abcd", None),
    ("x/{x:length(2,3)}", "x/abc", {"x": "abc"}),
    ("x/{x:length(2)}", "x/abc", None),
    ("x/{x:regex(^[a-z]{{2}}\\d$)}", "x/ab1", {"x": "ab1"}),
    ("g/{id:guid}", "g/{0F8FAD5B-D9CB-469F-A165-70867728950E}", {"id": "{0F8FAD5B-D9CB-469F-A165-70867728950E}"}),
    ("g/{id:guid}", "g/0f8fad5b-d9cb-469f-a165-7086772895", None),
    ("o/{a}/{b?}", "o/1", {"a": "1"}),
    ("o/{a}/{b?}", "o/1/2", {"a": "1", "b": "2"}),
    ("d/{a=home}", "d", {"a": "home"}),
    ("d/{a=home}", "d/x", {"a": "x"}),
    ("c/{*rest}", "c", {}),
    ("c/{*rest}", "c/a/b%2Fc/d", {"rest": "a/b/c/d"}),
    ("c/{**rest}", "c/a/b", {"rest": "a/b"}),
    ("f/{name}.{ext}", "f/report.v2.pdf", {"name": "report.v2", "ext": "pdf"}),
    ("f/{name}.{ext}", "f/report", None),
    ("e/{v}", "e/a%20b", {"v": "a b"}),
    ("", "", {}),
])
def test_template_matching(template, path, expected):
    assert match(template, path) == expected


@pytest.mark.parametrize("template", ["a/{*rest}/b", "a/{x}/{x}", "a/{x:nosuch}", "a/{x", "a//b", "a/{1x}"])
def test_invalid_templates_are_refused(template):
    with pytest.raises(RouteTemplateError):
        RouteTemplate.parse(template)


def test_precedence_literal_then_constrained_then_parameter_then_catch_all():
    table = RouteTable([(RouteTemplate.parse(t), None, t) for t in
                        ["p/{*rest}", "p/{id}", "p/{id:int}", "p/special"]])
    assert table.find("p/special", "GET")[0].target == "p/special"
    assert table.find("p/7", "GET")[0].target == "p/{id:int}"
    assert table.find("p/x", "GET")[0].target == "p/{id}"
    assert table.find("p/x/y", "GET")[0].target == "p/{*rest}"


def test_methods_are_filtered_after_the_route_matches():
    table = RouteTable([(RouteTemplate.parse("r/{id}"), frozenset({"GET"}), "get"),
                        (RouteTemplate.parse("r/{id}"), frozenset({"DELETE"}), "delete")])
    assert table.find("r/1", "delete")[0].target == "delete"
    assert table.find("r/1", "PUT") == (None, {"GET", "DELETE"})
    assert table.find("other", "GET") == (None, set())
