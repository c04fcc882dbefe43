"""ASP.NET Core route templates, as the Functions host matches HTTP trigger routes.

Supported: literal segments (case-insensitive), ``{name}``, optional ``{name?}``, defaults
``{name=value}``, catch-all ``{*rest}`` / ``{**rest}``, complex segments (``{name}.{ext}``), and
inline constraints ``int long bool guid datetime decimal double float alpha minlength(n)
maxlength(n) length(n) length(a,b) min(n) max(n) range(a,b) regex(expr) required``, which can be
chained (``{n:int:min(1)}``). Values are percent-decoded per segment. Candidate routes are tried
in ASP.NET's inbound precedence order (literal before constrained parameter before parameter
before catch-all).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Callable, Iterable, Sequence
from urllib.parse import unquote

Constraint = Callable[[str], bool]

_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_FLOAT_RE = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_GUID_RE = re.compile(
    r"^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
    r"|\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\))$", re.IGNORECASE)


class RouteTemplateError(ValueError):
    """The template is not a valid ASP.NET route template (the host fails indexing)."""


def _int_between(low: int, high: int) -> Constraint:
    return lambda v: bool(_INT_RE.match(v)) and low <= int(v) <= high


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.strip())
        return True
    except ValueError:
        return False


def _is_decimal(value: str) -> bool:
    try:
        return Decimal(value.strip()).is_finite()
    except InvalidOperation:
        return False


def _is_float(value: str) -> bool:
    return bool(_FLOAT_RE.match(value)) and math.isfinite(float(value))


def _numbers(args: str, count: int) -> list[int]:
    parts = [p.strip() for p in args.split(",")] if args else []
    if len(parts) != count or not all(_INT_RE.match(p) for p in parts):
        raise RouteTemplateError(f"expected {count} integer argument(s), got ({args})")
    return [int(p) for p in parts]


def _length(args: str) -> Constraint:
    parts = args.split(",")
    low, high = _numbers(args, len(parts)) if len(parts) == 2 else _numbers(args, 1) * 2
    return lambda v: low <= len(v) <= high


def _regex(args: str) -> Constraint:
    try:
        pattern = re.compile(args, re.IGNORECASE)
    except re.error as exc:
        raise RouteTemplateError(f"invalid regex constraint ({args}): {exc}") from exc
    return lambda v: pattern.search(v) is not None


# name -> factory(arguments inside the parentheses, "" when none) -> predicate
CONSTRAINTS: dict[str, Callable[[str], Constraint]] = {
    "int": lambda _: _int_between(-2**31, 2**31 - 1),
    "long": lambda _: _int_between(-2**63, 2**63 - 1),
    "bool": lambda _: lambda v: v.strip().lower() in ("true", "false"),
    "guid": lambda _: lambda v: bool(_GUID_RE.match(v)),
    "datetime": lambda _: _is_datetime,
    "decimal": lambda _: _is_decimal,
    "double": lambda _: _is_float,
    "float": lambda _: _is_float,
    "alpha": lambda _: lambda v: bool(re.fullmatch(r"[a-z]*", v, re.IGNORECASE)),
    "required": lambda _: lambda v: v != "",
    "minlength": lambda a: (lambda n: lambda v: len(v) >= n)(*_numbers(a, 1)),
    "maxlength": lambda a: (lambda n: lambda v: len(v) <= n)(*_numbers(a, 1)),
    "length": _length,
    "min": lambda a: (lambda n: lambda v: bool(_INT_RE.match(v)) and int(v) >= n)(*_numbers(a, 1)),
    "max": lambda a: (lambda n: lambda v: bool(_INT_RE.match(v)) and int(v) <= n)(*_numbers(a, 1)),
    "range": lambda a: _int_between(*_numbers(a, 2)),
    "regex": _regex,
}


@dataclass(frozen=True)
class Parameter:
    name: str
    constraints: tuple[Constraint, ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


@dataclass(frozen=True)
class Segment:
    parts: tuple[str | Parameter, ...]

    @cached_property
    def parameter(self) -> Parameter | None:
        """The parameter when the segment is exactly one parameter."""
        return self.parts[0] if len(self.parts) == 1 and isinstance(self.parts[0], Parameter) else None

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """A segment that is not exactly one parameter, as a regex (literals case-insensitive),
        compiled once: routes are matched on every request."""
        return re.compile("".join(f"(?P<{p.name}>.+)" if isinstance(p, Parameter) else re.escape(p)
                                  for p in self.parts), re.IGNORECASE | re.DOTALL)

    @cached_property
    def may_be_missing(self) -> bool:
        """The path may end before this segment (an optional, defaulted or catch-all parameter)."""
        param = self.parameter
        return bool(param and (param.optional or param.default is not None or param.catch_all))

    @property
    def precedence(self) -> int:
        """ASP.NET ``RoutePrecedence.ComputeInbound`` digit: lower is tried first."""
        if len(self.parts) > 1:
            return 2
        part = self.parts[0]
        if isinstance(part, str):
            return 1
        digit = 5 if part.catch_all else 3
        return digit - 1 if part.constraints else digit


def _split_constraints(body: str) -> list[str]:
    """Split ``name:c1:c2(a:b)`` on colons that are outside parentheses."""
    pieces, depth, current = [], 0, []
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == ":" and depth == 0:
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
    pieces.append("".join(current))
    return pieces


def _parse_parameter(body: str, template: str) -> Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default = None
    if "=" in body and "(" not in body.split("=", 1)[0]:
        body, default = body.split("=", 1)
    optional = body.endswith("?")
    body = body.rstrip("?")
    name, *specs = _split_constraints(body)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteTemplateError(f"invalid parameter name {name!r} in route {template!r}")
    constraints = []
    for spec in specs:
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", spec, re.DOTALL)
        if not match or match.group(1).lower() not in CONSTRAINTS:
            raise RouteTemplateError(f"unknown route constraint {spec!r} in route {template!r}")
        constraints.append(CONSTRAINTS[match.group(1).lower()](match.group(2) or ""))
    return Parameter(name, tuple(constraints), optional, default, catch_all)


def _parse_segment(text: str, template: str) -> Segment:
    """Literal text and ``{parameters}``; ``{{`` and ``}}`` are escaped braces (also inside a
    parameter, e.g. a regex constraint's quantifier)."""
    parts: list[str | Parameter] = []
    literal, i = [], 0
    while i < len(text):
        pair = text[i:i + 2]
        if pair in ("{{", "}}"):
            literal.append(pair[0])
            i += 2
        elif text[i] == "}":
            raise RouteTemplateError(f"unbalanced braces in route {template!r}")
        elif text[i] == "{":
            if literal:
                parts.append("".join(literal))
                literal = []
            body, i = [], i + 1
            while i < len(text) and (text[i] != "}" or text[i:i + 2] == "}}"):
                escaped = text[i:i + 2] in ("{{", "}}")
                body.append(text[i])
                i += 2 if escaped else 1
            if i >= len(text):
                raise RouteTemplateError(f"unbalanced braces in route {template!r}")
            parts.append(_parse_parameter("".join(body), template))
            i += 1
        else:
            literal.append(text[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    if not parts:
        raise RouteTemplateError(f"empty segment in route {template!r}")
    return Segment(tuple(parts))


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed route template; ``match`` returns route values or ``None``."""

    text: str
    segments: tuple[Segment, ...] = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> "RouteTemplate":
        stripped = text.strip().lstrip("~").strip("/")
        segments = tuple(_parse_segment(s, text) for s in stripped.split("/")) if stripped else ()
        names = [p.name.lower() for s in segments for p in s.parts if isinstance(p, Parameter)]
        if len(names) != len(set(names)):
            raise RouteTemplateError(f"a parameter name appears twice in route {text!r}")
        for i, segment in enumerate(segments):
            for part in segment.parts:
                if isinstance(part, Parameter) and part.catch_all and i != len(segments) - 1:
                    raise RouteTemplateError(f"a catch-all parameter must be last in route {text!r}")
        return cls(text, segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(s.precedence for s in self.segments)

    @cached_property
    def segment_counts(self) -> tuple[int, float]:
        """(fewest, most) path segments this template can match: a cheap test before :meth:`match`."""
        required = max((i + 1 for i, s in enumerate(self.segments) if not s.may_be_missing), default=0)
        last = self.segments[-1].parameter if self.segments else None
        return required, math.inf if last and last.catch_all else len(self.segments)

    def match(self, path_segments: Sequence[str]) -> dict[str, str] | None:
        """Match raw (still percent-encoded) path segments; return the route values."""
        fewest, most = self.segment_counts
        if not fewest <= len(path_segments) <= most:
            return None
        values: dict[str, str] = {}
        for i, segment in enumerate(self.segments):
            param = segment.parameter
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
            if not self._match_segment(segment, unquote(path_segments[i]), values):
                return None
        return values if len(path_segments) <= len(self.segments) else None

    @staticmethod
    def _match_segment(segment: Segment, text: str, values: dict[str, str]) -> bool:
        param = segment.parameter
        if param:
            if not param.accepts(text):
                return False
            values[param.name] = text
            return True
        match = segment.pattern.fullmatch(text)
        if not match:
            return False
        params = [p for p in segment.parts if isinstance(p, Parameter)]
        if not all(p.accepts(match.group(p.name)) for p in params):
            return False
        values.update({p.name: match.group(p.name) for p in params})
        return True


def split_path(raw_path: str) -> list[str]:
    """Raw path (no query) to segments; a trailing slash is ignored as ASP.NET does."""
    stripped = raw_path.strip("/")
    return stripped.split("/") if stripped else []


@dataclass(frozen=True)
class RouteMatch:
    target: object
    values: dict[str, str]


class RouteTable:
    """Routes in inbound-precedence order; each entry carries its allowed methods (None = any)."""

    def __init__(self, entries: Iterable[tuple[RouteTemplate, frozenset[str] | None, object]] = ()):
        self._entries = sorted(entries, key=lambda e: (e[0].precedence, e[0].text.lower()))

    def find(self, raw_path: str, method: str) -> tuple[RouteMatch | None, set[str]]:
        """Return the first match that allows ``method``; otherwise ``None`` and the methods
        that some matching route allows (empty when no route matches the path: 404)."""
        segments = split_path(raw_path)
        allowed: set[str] = set()
        for template, methods, target in self._entries:
            values = template.match(segments)
            if values is None:
                continue
            if methods is None or method.upper() in methods:
                return RouteMatch(target, values), allowed
            allowed |= methods
        return None, allowed
