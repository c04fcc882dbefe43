"""Troubleshooting catalog of the Validation Test: which failure gets which message.

The catalog is data (``troubleshooting.json`` beside this module):

* ``messages`` — one entry per message id (DESIGN §4): outcome ``status`` (``failed`` or
  ``error``; ``passed`` only for an entry marked ``"warning": true``, a message shown with a passed
  test, e.g. ``CERTIFICATE_EXPIRING``), the ``message`` (the spec's exact words for Messages 1-3), optional
  ``solutionsIntro``, ``solutions``, named ``variants`` (their own solutions, e.g. the per-user
  and the Conditional Access variants of ``MFA_ENABLED``), named ``causes`` and ``limitations``.
* ``genericCodes`` — AADSTS codes that only wrap a more specific one (``AADSTS70002: Error
  validating credentials. AADSTS50126: ...``): :func:`most_specific_code` skips them when an error
  body names several codes.
* ``rules`` — tried in file order; the first whose every ``when`` condition matches the
  :class:`Signal` wins. A condition is a value or a list of accepted values; ``httpStatus`` also
  accepts ``"4xx"``/``"5xx"``. Conditions: ``code``, ``httpStatus``, ``path`` (``modern`` |
  ``legacy`` | ``input`` | ``app``: the client-credentials sign-in of an app registration), ``mfaEnabled``, ``step``, ``passwordShape`` (``appPassword`` |
  ``other``), ``caChallenge``.

A signal that no rule matches gets ``UNKNOWN_FAILURE``, which keeps the raw code. Adding a message
is one row (plus its entry in ``messages``) and one parametrized test.

How the evidence picks a message where the same code means different things:

* ``MFA_ENABLED`` (Message 3) per-user vs Conditional Access variant: Entra ID answers 50076/50079
  for both; when a Conditional Access policy requires the MFA, its error JSON carries a ``claims``
  challenge naming the policies (``capolids``) — the probe reports that as ``caChallenge``. With
  it: the Conditional Access variant; without it: the per-user variant. ``50158`` (external
  challenge) is always Conditional Access.
* 50076 on the legacy path (MFA on): the password was right but Entra still wants MFA. An app
  password (16 lowercase letters) cannot satisfy a Conditional Access MFA policy → Conditional
  Access variant; any other password is the account's sign-in password → ``INVALID_APP_PASSWORD``.
* 50126: MFA off → Message 2 (with the app-password-shape cause when it fits); MFA on →
  ``INVALID_APP_PASSWORD``.
* Legacy sign-in refused at wsignin1.0 after a good token: the probe judges it by the cloud's
  timeline (on or after the day IDCRL ended: ``IDCRL_RETIRED``; before: ``SP_NO_AUTH_COOKIE``), and
  an STS answer that is not SOAP is ``STS_INVALID_RESPONSE`` → ``LEGACY_AUTH_RETIRED`` for the first
  and the last, ``LEGACY_AUTH_BLOCKED`` for ``SP_NO_AUTH_COOKIE``. ``LEGACY_AUTH_RETIRED`` never sends
  the admin to the "apps that don't use modern authentication" setting.
* The client application itself (65001, 700016, 7000112): on the user sign-in (``modern``,
  ``legacy``) the cause names the service's client application (``M365_CLIENT_ID``); on ``app`` it
  is the app profile's own registration.
* App profiles' permissions: tokens without any ``roles`` (``APP_NO_ROLES``) are consent missing;
  some required roles missing (``APP_ROLES_MISSING``), a Graph ``sites/root`` 403 or a SharePoint
  app-only 403 are ``APP_PERMISSION_MISSING`` naming ``{missingPermissions}`` per resource. A
  SharePoint 401 ``Unsupported app only token`` (``SP_APP_ONLY_REFUSED``) is ``APP_ONLY_TOKEN_REFUSED``.

Texts may hold ``{placeholders}`` filled from the ``params`` given to :func:`classify`
(``reservedIpRanges``, ``retryAfterSeconds``, ``code``, ``description``, ``httpStatus``,
``roles``, ``adminCenterUrl``, ``tenantId``, ``correlationId``; app profiles: ``adminConsentUrl``,
``missingPermissions``, ``sharepointUrl``); an unknown placeholder stays as written.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

CATALOG_PATH = Path(__file__).with_name("troubleshooting.json")
UNKNOWN_FAILURE = "UNKNOWN_FAILURE"
CONDITIONS = frozenset({"code", "httpStatus", "path", "mfaEnabled", "step", "passwordShape",
                        "caChallenge"})
#: Outcome statuses a message may give; ``passed`` only with ``"warning": true``.
STATUSES = frozenset({"failed", "error", "passed"})


@dataclass(frozen=True)
class Signal:
    """The facts of one failed validation, as the classifier sees them (no secrets).

    :ivar code: ``AADSTS50126``, a SharePoint/Graph/transport condition of the probe, or a
        service condition (``INPUT_INVALID``, ``INPUT_ADMIN_CENTER_URL_REQUIRED``,
        ``ROLE_INSUFFICIENT``).
    :ivar path: ``modern`` (MFA off), ``legacy`` (MFA on) or ``input`` (nothing was sent).
    :ivar password_shape: ``appPassword`` when the password is 16 lowercase letters, else ``other``.
    """

    code: str | None = None
    http_status: int | None = None
    path: str = "modern"
    mfa_enabled: bool = False
    step: str | None = None
    password_shape: str | None = None
    ca_challenge: bool = False

    def value(self, condition: str) -> Any:
        return {"code": self.code, "httpStatus": self.http_status, "path": self.path,
                "mfaEnabled": self.mfa_enabled, "step": self.step,
                "passwordShape": self.password_shape, "caChallenge": self.ca_challenge}[condition]


@dataclass(frozen=True)
class Diagnosis:
    """The catalog's answer: texts are final (placeholders filled)."""

    message_id: str
    status: str
    message: str
    solutions: tuple[str, ...]
    solutions_intro: str | None = None
    cause: str | None = None
    variant: str | None = None
    limitations: tuple[str, ...] = ()
    rule_id: str | None = None


@dataclass(frozen=True)
class Catalog:
    messages: Mapping[str, Mapping[str, Any]]
    rules: tuple[Mapping[str, Any], ...]
    generic_codes: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Catalog":
        catalog = cls(messages=raw["messages"], rules=tuple(raw["rules"]),
                      generic_codes=frozenset(raw.get("genericCodes", {}).get("codes", ())))
        problems = catalog.problems()
        if problems:
            raise ValueError("troubleshooting catalog: " + "; ".join(problems))
        return catalog

    def problems(self) -> list[str]:
        """Dangling references and unknown conditions (checked when the catalog loads)."""
        out = []
        if UNKNOWN_FAILURE not in self.messages:
            out.append(f"messages.{UNKNOWN_FAILURE} is missing")
        for mid, entry in self.messages.items():
            if entry.get("status") not in STATUSES:
                out.append(f"messages.{mid}: status {entry.get('status')!r}")
            elif (entry["status"] == "passed") != bool(entry.get("warning")):
                out.append(f"messages.{mid}: status 'passed' goes with (and only with) \"warning\": true")
        seen = set()
        for i, rule in enumerate(self.rules):
            rid = rule.get("id", f"#{i}")
            if rid in seen:
                out.append(f"rules[{i}]: duplicate id {rid}")
            seen.add(rid)
            entry = self.messages.get(rule.get("messageId", ""))
            if entry is None:
                out.append(f"rules[{i}] ({rid}): unknown messageId {rule.get('messageId')!r}")
                continue
            unknown = set(rule.get("when", {})) - CONDITIONS
            if unknown or not rule.get("when"):
                out.append(f"rules[{i}] ({rid}): conditions {sorted(unknown) or 'missing'}")
            if rule.get("variant") and rule["variant"] not in entry.get("variants", {}):
                out.append(f"rules[{i}] ({rid}): unknown variant {rule['variant']!r}")
            if rule.get("cause") and rule["cause"] not in entry.get("causes", {}):
                out.append(f"rules[{i}] ({rid}): unknown cause {rule['cause']!r}")
        return out


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    return Catalog.from_dict(json.loads(CATALOG_PATH.read_text(encoding="utf-8")))


def most_specific_code(codes: "list[str] | tuple[str, ...]", catalog: Catalog | None = None) -> str | None:
    """The code of an error body that names several: the first not in ``genericCodes`` (else the first).

    :param codes: ``AADSTSn`` codes in the order the body gives them.
    """
    catalog = catalog or load_catalog()
    codes = [c for c in codes if c]
    return next((c for c in codes if c not in catalog.generic_codes), codes[0] if codes else None)


def _without_code(description: Any, code: str | None) -> Any:
    """Entra's first line repeats the code (``AADSTS7000218: The request body...``); texts that
    show ``{code}: {description}`` keep it once."""
    if isinstance(description, str) and code and description.startswith(code + ":"):
        return description[len(code) + 1:].lstrip() or description
    return description


def _matches(expected: Any, actual: Any, condition: str) -> bool:
    accepted = expected if isinstance(expected, list) else [expected]
    for value in accepted:
        if condition == "httpStatus" and isinstance(value, str) and len(value) == 3 \
                and value.endswith("xx"):
            if isinstance(actual, int) and actual // 100 == int(value[0]):
                return True
        elif value == actual:
            return True
    return False


def find_rule(signal: Signal, catalog: Catalog | None = None) -> Mapping[str, Any] | None:
    """The first rule whose conditions all match ``signal`` (None: unknown)."""
    catalog = catalog or load_catalog()
    for rule in catalog.rules:
        if all(_matches(expected, signal.value(cond), cond) for cond, expected in rule["when"].items()):
            return rule
    return None


class _KeepUnknown(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(text: str | None, params: Mapping[str, Any]) -> str | None:
    if text is None:
        return None
    return text.format_map(_KeepUnknown({k: v for k, v in params.items() if v is not None}))


def classify(signal: Signal, *, params: Mapping[str, Any] | None = None,
             catalog: Catalog | None = None) -> Diagnosis:
    """Look ``signal`` up in the catalog. Pure: same signal and params, same diagnosis.

    :param Signal signal: what failed.
    :param params: values for the texts' placeholders; ``code`` defaults to ``signal.code``.
    :return: the :class:`Diagnosis`; ``UNKNOWN_FAILURE`` (keeping the code) when no rule matches.
    """
    catalog = catalog or load_catalog()
    params = {"code": signal.code or (f"HTTP {signal.http_status}" if signal.http_status else "unknown"),
              "httpStatus": signal.http_status, **(params or {})}
    params["description"] = _without_code(params.get("description"), params["code"])
    rule = find_rule(signal, catalog)
    message_id = rule["messageId"] if rule else UNKNOWN_FAILURE
    entry = catalog.messages[message_id]
    variant_name = rule.get("variant") if rule else None
    variant = entry.get("variants", {}).get(variant_name, {}) if variant_name else {}
    cause_name = rule.get("cause") if rule else None
    cause = entry["causes"][cause_name] if cause_name else entry.get("defaultCause")
    return Diagnosis(
        message_id=message_id,
        status=entry["status"],
        message=_fill(variant.get("message", entry["message"]), params) or "",
        solutions_intro=_fill(variant.get("solutionsIntro", entry.get("solutionsIntro")), params),
        solutions=tuple(_fill(s, params) or "" for s in variant.get("solutions", entry.get("solutions", []))),
        cause=_fill(cause, params),
        variant=variant_name,
        limitations=tuple(entry.get("limitations", ())),
        rule_id=rule.get("id") if rule else None,
    )
