"""Modern sign-in at Microsoft Entra ID (the Validation Test with MFA off): :class:`EntraSignIn`.

msal's ``PublicClientApplication`` (``settings.m365_client_id``, authority
``https://{login_host}/{tenant}``, no instance discovery) and ``acquire_token_by_username_password``
for Microsoft Graph, sent through :mod:`shared.adapters.upstream_http`.

Caching, through msal's public parameters only:

* One msal app per (authority, client id) for the whole process, built under a per-authority lock:
  the tenant's OpenID configuration is fetched once, not once per thread that arrives at once.
* ``token_cache`` keeps nothing (:class:`_NoTokenCache`) and ``http_cache`` keeps nothing
  (:class:`_NothingKept`): msal would otherwise cache failed token POSTs (HTTP 400 for 60 s,
  429/5xx for Retry-After), and every validation must reach Entra ID with the password.
* Instead, the ``http_client`` bridge (:class:`_MsalHttpBridge`) keeps successful GETs for 24 h,
  as msal did: msal only GETs discovery documents (OpenID configuration, user realm of each user
  name), so they are fetched once per process per tenant and user; POSTs always go out.

Steps: msal's GETs are recorded as ``discovery``, its POSTs as the exchange's step, ``token``.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import MutableMapping
from typing import Any, Iterator, Mapping

import msal
import requests

from shared.adapters.upstream_http import UpstreamHttp, current_exchange, first_line, json_object
from shared.domain.probes import Grant, ProbeResult
from shared.domain.troubleshooting import most_specific_code
from shared.domain.profile import Password

_AADSTS = re.compile(r"\bAADSTS(\d{5,7})\b")
_DISCOVERY_SECONDS = 24 * 3600
_DISCOVERY_CAPACITY = 1024


def entra_error_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """:meth:`~shared.adapters.upstream_http.Exchange.failed` keywords from Entra's error JSON
    (token endpoint or discovery): ``error_code`` (AADSTS code), first line of the description,
    ``suberror``, ``ca_challenge`` (the claims name Conditional Access policies), trace and
    correlation ids.

    A body may name several codes (``error_codes: [70002, 50126]``, or ``AADSTS70002: Error
    validating credentials. AADSTS50126: ...`` in the text): the most specific wins, by the
    catalog's ``genericCodes`` table. The claims challenge names policies as ``capolids`` or, in
    the older form, ``polids`` (``{"access_token":{"polids":{"essential":true,"Values":[...]}}}``).
    """
    listed = [f"AADSTS{c}" for c in (body.get("error_codes") or []) if str(c).isdigit()]
    description = str(body.get("error_description") or "")
    named = [f"AADSTS{n}" for n in _AADSTS.findall(first_line(description) or "")]
    codes = list(dict.fromkeys(listed + named))
    code = most_specific_code(codes)
    fields: dict[str, Any] = {"error_code": code, "error_description": first_line(description) or body.get("error"),
                              "suberror": body.get("suberror"), "ca_challenge": _names_policies(body.get("claims"))}
    if body.get("trace_id"):
        fields["trace_id"] = body["trace_id"]
    if body.get("correlation_id"):
        fields["correlation_id"] = body["correlation_id"]
    return fields


def _names_policies(claims: Any) -> bool:
    """Whether a claims challenge names Conditional Access policies (``capolids`` or ``polids``)."""
    if isinstance(claims, str):
        try:
            claims = json.loads(claims)
        except ValueError:
            return '"capolids"' in claims or '"polids"' in claims
    if not isinstance(claims, Mapping):
        return False
    for token in claims.values():
        if isinstance(token, Mapping) and any(k.lower() in ("capolids", "polids") for k in token):
            return True
    return False


def _entra_error_body(text: str) -> dict[str, Any]:
    return entra_error_fields(json_object(text) or {})


# --- msal: one app per authority; nothing cached by msal; discovery GETs cached by the bridge --

class _NoTokenCache(msal.TokenCache):
    """A token cache that keeps nothing: every validation signs in again with the password."""

    def add(self, event: Any, **kwargs: Any) -> None:  # noqa: D102
        return None

    def modify(self, credential_type: Any, old_entry: Any, new_key_value_pairs: Any = None) -> None:  # noqa: D102
        return None


class _NothingKept(MutableMapping):
    """msal's ``http_cache`` (documented as any dict-like): stores nothing, so msal caches no
    answer at all, whatever layout it uses inside."""

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __delitem__(self, key: Any) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0


class _DiscoveryCache:
    """Successful GET answers for 24 h (at most 1024, oldest dropped first), thread-safe."""

    def __init__(self, *, seconds: float = _DISCOVERY_SECONDS, capacity: int = _DISCOVERY_CAPACITY):
        self._seconds, self._capacity = seconds, capacity
        self._entries: OrderedDict[tuple[str, str], tuple[float, requests.Response]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> requests.Response | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: tuple[str, str], response: requests.Response) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (time.monotonic() + self._seconds, response)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _MsalHttpBridge:
    """The ``http_client`` of the process-wide msal apps: sends through the current step's
    :class:`~shared.adapters.upstream_http.UpstreamHttp`, so one app serves every probe (and every
    session) in the process; answers successful GETs (discovery) from :attr:`discovery`."""

    def __init__(self) -> None:
        self.discovery = _DiscoveryCache()

    @staticmethod
    def _http() -> UpstreamHttp:
        record = current_exchange()
        if record is None:
            raise RuntimeError("msal was used outside a probe step")
        return record.http

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        key = (url, repr(kwargs.get("params") or ""))
        response = self.discovery.get(key)
        if response is None:
            response = self._http().request("GET", url, step="discovery", **kwargs)
            if 200 <= response.status_code < 300:
                self.discovery.put(key, response)
        return response

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._http().request("POST", url, **kwargs)

    def close(self) -> None:
        """msal may call this; the pooled connections belong to the shared session."""


_APPS: dict[tuple[str, str], msal.PublicClientApplication] = {}
_APPS_LOCK = threading.Lock()
_APP_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_BRIDGE = _MsalHttpBridge()


def msal_app(authority: str, client_id: str) -> msal.PublicClientApplication:
    """The process-wide msal app of ``authority`` (built in the current probe step; its tenant
    discovery raises when the tenant does not exist, and then nothing is cached)."""
    key = (authority.lower(), client_id.lower())
    app = _APPS.get(key)
    if app is not None:
        return app
    with _APPS_LOCK:
        key_lock = _APP_LOCKS.setdefault(key, threading.Lock())
    with key_lock:  # one discovery per authority, not one per thread that arrives at once
        app = _APPS.get(key)
        if app is None:
            app = msal.PublicClientApplication(
                client_id, authority=authority, http_client=_BRIDGE, instance_discovery=False,
                token_cache=_NoTokenCache(), http_cache=_NothingKept())
            _APPS[key] = app
    return app


def forget_msal_apps() -> None:
    """Drop the cached apps and discovery answers (tests that need a cold start)."""
    with _APPS_LOCK:
        _APPS.clear()
    _BRIDGE.discovery.clear()


def cached_discovery_urls() -> list[str]:
    """URLs of the discovery answers kept in this process (what tests and benchmarks inspect)."""
    return [url for url, _ in _BRIDGE.discovery.keys()]


# --- the step ------------------------------------------------------------------------------------

class EntraSignIn:
    """Modern (ROPC) sign-in for Microsoft Graph, over the probes' :class:`UpstreamHttp`.

    :param UpstreamHttp http: the probe's recorded HTTP.
    :param str authority_host: ``https://{login_host}`` of the cloud.
    :param str client_id: the public client application id.
    :param str scope: the Microsoft Graph scope to ask a token for.
    """

    def __init__(self, http: UpstreamHttp, *, authority_host: str, client_id: str, scope: str):
        self._http = http
        self._authority_host = authority_host
        self._client_id = client_id
        self._scope = scope

    def sign_in(self, tenant_id: str, username: str, password: Password, *, correlation_id: str) -> ProbeResult:
        """1 token request (+ once per process: OpenID configuration, user realm)."""
        authority = f"{self._authority_host}/{tenant_id}"
        with self._http.exchange(correlation_id, step="token") as ex:
            try:
                app = msal_app(authority, self._client_id)
                result = app.acquire_token_by_username_password(username, password.reveal(), scopes=[self._scope])
            except Exception as exc:  # noqa: BLE001 - transport and library errors become data
                return ex.from_exception(exc, error_fields=_entra_error_body)
            if "access_token" in result:
                return ex.ok(grant=Grant(result["access_token"]))
            return ex.failed(**entra_error_fields(result))
