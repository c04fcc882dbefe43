"""Generate the catalog tables of ``docs/troubleshooting.md`` from the catalog data.

The tables are rendered from the troubleshooting catalog (``shared/domain/troubleshooting.json``,
read through :func:`shared.domain.troubleshooting.load_catalog`) and the limitations catalog
(``shared/domain/limitations.json``, read through
:func:`shared.domain.profile.limitation_catalog`). They replace whatever stands between the
:data:`BEGIN` and :data:`END` markers of the page; the text around them is written by hand.

Usage::

    .venv/bin/python -m devtools.docs           # rewrite the generated part of docs/troubleshooting.md
    .venv/bin/python -m devtools.docs --check   # exit 1 (and say so) when the page is stale

``tests/unit/test_docs.py`` renders the tables in memory and fails when the page differs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from shared.domain import profile as profile_domain
from shared.domain import troubleshooting

ROOT = Path(__file__).resolve().parents[1]
TROUBLESHOOTING_DOC = ROOT / "docs" / "troubleshooting.md"
COMMAND = ".venv/bin/python -m devtools.docs"

BEGIN = ("<!-- BEGIN GENERATED: troubleshooting catalog. Do not edit by hand: "
         f"edit shared/domain/troubleshooting.json or limitations.json, then run `{COMMAND}`. -->")
END = "<!-- END GENERATED: troubleshooting catalog -->"

#: How a rule condition's values read in the table (a value missing here is shown as written).
#: These texts are this module's own Markdown, not catalog data.
_PATHS = {"modern": "modern sign-in (MFA off)", "legacy": "legacy sign-in (MFA on)",
          "input": "input check (nothing sent to Microsoft 365)"}
_PASSWORD_SHAPES = {"appPassword": "the password has an app password's shape (16 lowercase letters)",
                    "other": "the password does not have an app password's shape"}
_APPLIES_TO = {"mfa": "MFA profiles", "common": "common profiles"}
_LIMITATION_WHEN = {"legacyAppsBlocked": "once a Validation Test of the profile has ended with "
                                         "`LEGACY_AUTH_BLOCKED` (SharePoint blocks apps that don't use "
                                         "modern authentication); a later passing test of the MFA "
                                         "profile removes it"}


# --- cell text --------------------------------------------------------------------------------

def cell(text: str) -> str:
    """Catalog text as the content of one Markdown table cell.

    Escapes what would break the row or turn into markup: backslash, ``|``, HTML's ``& < >``,
    emphasis and code markers; a line break becomes ``<br>``.
    """
    out = text.replace("\\", "\\\\")
    for char, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"),
                          ("*", "\\*"), ("`", "\\`")):
        out = out.replace(char, escaped)
    return "<br>".join(out.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def code(value: Any) -> str:
    """A catalog id or code as an inline code span inside a table cell."""
    text = str(value).replace("`", "'").replace("\r", " ").replace("\n", " ")
    return "`" + text.replace("|", "\\|") + "`"


def bullets(items: Iterable[str]) -> str:
    """Already-escaped cell texts as a list inside one cell (empty string for no items)."""
    items = list(items)
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>" if items else ""


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# --- rules ------------------------------------------------------------------------------------

def _values(expected: Any) -> list[Any]:
    return expected if isinstance(expected, list) else [expected]


def _any_of(expected: Any, render=code) -> str:
    values = [render(v) for v in _values(expected)]
    return values[0] if len(values) == 1 else "one of " + ", ".join(values)


def condition_text(name: str, expected: Any) -> str:
    """One ``when`` condition of a rule, in words (values stay verbatim as code)."""
    if name == "code":
        return "code " + _any_of(expected)
    if name == "httpStatus":
        return "HTTP status " + _any_of(expected)
    if name == "path":
        return " or ".join(cell(_PATHS.get(v, str(v))) for v in _values(expected))
    if name == "passwordShape":
        return " or ".join(cell(_PASSWORD_SHAPES.get(v, str(v))) for v in _values(expected))
    if name == "step":
        return "at step " + _any_of(expected)
    if name == "mfaEnabled":
        return " or ".join("MFA on" if v is True else "MFA off" if v is False else code(v)
                           for v in _values(expected))
    if name == "caChallenge":
        return " or ".join(
            "Microsoft Entra ID names a Conditional Access policy (claims challenge)" if v is True else
            "no Conditional Access claims challenge" if v is False else code(v) for v in _values(expected))
    return f"{code(name)} = {_any_of(expected)}"


def rule_text(number: int, rule: Mapping[str, Any]) -> str:
    """``#n `rule-id`: condition; condition (variant `v`, cause `c`)``."""
    conditions = "; ".join(condition_text(name, expected) for name, expected in rule["when"].items())
    picks = [f"variant {code(rule['variant'])}"] if rule.get("variant") else []
    picks += [f"cause {code(rule['cause'])}"] if rule.get("cause") else []
    return f"#{number} {code(rule.get('id', number))}: {conditions}" + (f" ({', '.join(picks)})" if picks else "")


def _rules_by_message(catalog: troubleshooting.Catalog) -> dict[str, list[tuple[int, Mapping[str, Any]]]]:
    out: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for number, rule in enumerate(catalog.rules, start=1):
        out.setdefault(rule["messageId"], []).append((number, rule))
    return out


# --- tables -----------------------------------------------------------------------------------

def _solutions_cell(entry: Mapping[str, Any]) -> str:
    def block(intro: str | None, solutions: list[str]) -> str:
        return (cell(intro) if intro else "") + bullets(cell(s) for s in solutions)

    variants = entry.get("variants", {})
    parts = []
    if entry.get("solutions") or entry.get("solutionsIntro"):
        lead = "Without a variant: " if variants else ""
        parts.append(lead + block(entry.get("solutionsIntro"), entry.get("solutions", [])))
    for name, variant in variants.items():
        intro = variant.get("solutionsIntro", entry.get("solutionsIntro"))
        parts.append(f"Variant {code(name)}: " + block(intro, variant.get("solutions", entry.get("solutions", []))))
    return "<br>".join(parts)


def _message_cell(entry: Mapping[str, Any]) -> str:
    text = cell(entry["message"])
    for name, variant in entry.get("variants", {}).items():
        if "message" in variant:
            text += f"<br>Variant {code(name)}: {cell(variant['message'])}"
    if entry.get("limitations"):
        text += "<br>The outcome lists " + ", ".join(code(lid) for lid in entry["limitations"]) + "."
    return text


def messages_table(catalog: troubleshooting.Catalog) -> list[str]:
    rules = _rules_by_message(catalog)
    lines = [_row(["Message id", "Status", "Message", "Solutions", "Raised when (rules, in match order)"]),
             "|---|---|---|---|---|"]
    for message_id, entry in catalog.messages.items():
        ident = code(message_id) + (f"<br>Message {entry['specMessage']}" if entry.get("specMessage") else "")
        if message_id == troubleshooting.UNKNOWN_FAILURE:
            raised = ["no rule matches the failure (the raw code is kept in the message)"]
        else:
            raised = [rule_text(n, r) for n, r in rules.get(message_id, [])] or ["no rule leads here"]
        lines.append(_row([ident, code(entry["status"]), _message_cell(entry), _solutions_cell(entry),
                           bullets(raised)]))
    return lines


def causes_table(catalog: troubleshooting.Catalog) -> list[str]:
    rules = _rules_by_message(catalog)
    lines = [_row(["Message id", "Cause", "Text", "Picked by"]), "|---|---|---|---|"]
    for message_id, entry in catalog.messages.items():
        by_cause: dict[str | None, list[str]] = {}
        for number, rule in rules.get(message_id, []):
            by_cause.setdefault(rule.get("cause"), []).append(f"#{number} {code(rule.get('id', number))}")
        if message_id == troubleshooting.UNKNOWN_FAILURE:
            by_cause[None] = ["no rule matches"]
        if entry.get("defaultCause"):
            lines.append(_row([code(message_id), "(default)", cell(entry["defaultCause"]),
                               ", ".join(by_cause.get(None, [])) or "rules without a cause"]))
        for name, text in entry.get("causes", {}).items():
            lines.append(_row([code(message_id), code(name), cell(text),
                               ", ".join(by_cause.get(name, [])) or "no rule"]))
    return lines


def limitations_table(limitations: Mapping[str, Mapping[str, Any]],
                      catalog: troubleshooting.Catalog) -> list[str]:
    lines = [_row(["Limitation id", "Applies to", "When", "Text", "Listed by outcomes of"]), "|---|---|---|---|---|"]
    for lid, row in limitations.items():
        when = row.get("when")
        when_text = _LIMITATION_WHEN.get(when) or (code(when) if when else "always")
        listed = [code(mid) for mid, entry in catalog.messages.items() if lid in entry.get("limitations", ())]
        lines.append(_row([code(lid), cell(_APPLIES_TO.get(row["appliesTo"], row["appliesTo"])), when_text,
                           cell(row["text"]), ", ".join(listed) or "(none)"]))
    return lines


def render(catalog: troubleshooting.Catalog | None = None,
           limitations: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The generated part of ``docs/troubleshooting.md``, markers included, ending in a newline."""
    catalog = catalog or troubleshooting.load_catalog()
    limitations = limitations if limitations is not None else profile_domain.limitation_catalog()
    parts = [
        BEGIN, "",
        "### Messages", "",
        f"{len(catalog.messages)} messages, {len(catalog.rules)} rules. The rules are tried in the order of "
        "their numbers; the first whose every condition holds gives the message.", "",
        *messages_table(catalog), "",
        "### Causes", "",
        "The `cause` of an outcome: the rule's cause, or the message's default when the rule names none.", "",
        *causes_table(catalog), "",
        "### Limitations", "",
        *limitations_table(limitations, catalog), "",
        END,
    ]
    return "\n".join(parts) + "\n"


# --- the page ---------------------------------------------------------------------------------

def generated_part(text: str) -> str:
    """The generated part of a page (markers included, with the newline after END)."""
    start, end = _bounds(text)
    return text[start:end]


def replace_generated(text: str, generated: str) -> str:
    start, end = _bounds(text)
    return text[:start] + generated + text[end:]


def _bounds(text: str) -> tuple[int, int]:
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"the page must hold the BEGIN and the END marker exactly once each ({BEGIN!r} … {END!r})")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    if end <= start:
        raise ValueError("the END marker comes before the BEGIN marker")
    if text[end:end + 1] == "\n":
        end += 1
    return start, end


def stale_message(path: Path = TROUBLESHOOTING_DOC) -> str:
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return (f"{rel}: the generated troubleshooting catalog is stale (the catalog data changed). "
            f"Regenerate it with `{COMMAND}` and commit the result.")


def is_current(path: Path = TROUBLESHOOTING_DOC, **render_args: Any) -> bool:
    return generated_part(path.read_text(encoding="utf-8")) == render(**render_args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the page is stale (exit 1)")
    parser.add_argument("--path", type=Path, default=TROUBLESHOOTING_DOC, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    updated = replace_generated(text, render())
    if updated == text:
        print(f"{args.path}: up to date")
        return 0
    if args.check:
        print(stale_message(args.path), file=sys.stderr)
        return 1
    args.path.write_text(updated, encoding="utf-8")
    print(f"{args.path}: generated catalog rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
