"""Client-credentials sign-in of an app registration (app profiles): :class:`AppSignIn`.

msal's ``ConfidentialClientApplication`` with ``client_credential={"client_assertion": ...}``: the
assertion is built by :func:`shared.domain.certificates.client_assertion` and signed by Key Vault
(the caller's ``sign``), so msal never sees a key. One token request per resource; msal's own
caches keep nothing (every test reaches Entra ID), discovery GETs are shared with the modern
sign-in's bridge. Errors are data (:class:`~shared.domain.probes.ProbeResult`), except the signer's
own failure (Key Vault unavailable: ``DependencyUnavailable``), which propagates: it is this
service's dependency that failed, not the tenant's answer, as when Key Vault cannot read a password.
"""
from __future__ import annotations

import time
from typing import Callable

import msal

from shared.adapters.entra_sign_in import _BRIDGE, _NoTokenCache, _NothingKept, _entra_error_body, entra_error_fields
from shared.adapters.upstream_http import UpstreamHttp
from shared.domain.certificates import CertificateInfo, client_assertion, token_roles
from shared.domain.errors import DependencyUnavailable
from shared.domain.probes import Grant, ProbeResult


class AppSignIn:
    """:param UpstreamHttp http: the probes' recorded HTTP. :param str authority_host: the cloud's
    ``https://{login_host}``."""

    def __init__(self, http: UpstreamHttp, *, authority_host: str, clock: Callable[[], float] = time.time):
        self._http = http
        self._authority_host = authority_host
        self._clock = clock

    def token(self, tenant_id: str, client_id: str, certificate: CertificateInfo, sign: Callable[[bytes], bytes],
              *, scope: str, correlation_id: str, step: str = "appToken") -> ProbeResult:
        """1 token request (+ once per process: the tenant's OpenID configuration). On success
        ``grant`` holds the token and ``role_names`` its ``roles`` claim."""
        authority = f"{self._authority_host}/{tenant_id}"
        built: list = []

        def assertion() -> str:
            # The audience is the token endpoint msal posts to (from the tenant's OpenID configuration:
            # for a domain or another name of the tenant, Entra names the tenant's GUID), as msal's
            # own certificate assertions do.
            audience = built[0].authority.token_endpoint if built else f"{authority}/oauth2/v2.0/token"
            return client_assertion(client_id=client_id, audience=audience, certificate=certificate, sign=sign,
                                    now=self._clock())

        with self._http.exchange(correlation_id, step=step) as ex:
            try:
                app = msal.ConfidentialClientApplication(
                    client_id, authority=authority, client_credential={"client_assertion": assertion},
                    http_client=_BRIDGE, instance_discovery=False, token_cache=_NoTokenCache(),
                    http_cache=_NothingKept())
                built.append(app)
                result = app.acquire_token_for_client(scopes=[scope])
            except DependencyUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - transport and library errors become data
                return ex.from_exception(exc, error_fields=_entra_error_body)
            if "access_token" in result:
                token = result["access_token"]
                return ex.ok(grant=Grant(token), role_names=token_roles(token))
            return ex.failed(**entra_error_fields(result))
