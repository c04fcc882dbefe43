"""The Validation Test's sign-ins against Microsoft 365: :class:`M365AccountProbe`.

A thin facade over one module per upstream, all on one :class:`~shared.adapters.upstream_http.UpstreamHttp`
(timeout, correlation id as ``client-request-id``, no redirects, no cookies kept):

* modern sign-in (MFA off): :mod:`shared.adapters.entra_sign_in`, then
  :mod:`shared.adapters.graph_roles` for the directory roles;
* legacy SharePoint sign-in (MFA on): :mod:`shared.adapters.sharepoint_legacy_sign_in`;
* app profiles: :mod:`shared.adapters.app_sign_in` (client credentials with a client assertion that
  Key Vault signs) and :mod:`shared.adapters.sharepoint_app_only` (Graph ``sites/root``, SharePoint
  app-only ``_api/web``).

The password goes only into the token request (or the STS envelope). Errors are data
(:class:`~shared.domain.probes.ProbeResult`); the texts kept are Entra's first line (AADSTS code
and text), never a request body.
"""
from __future__ import annotations

from typing import Callable

import requests

from shared.adapters.app_sign_in import AppSignIn
from shared.adapters.entra_sign_in import EntraSignIn
from shared.adapters.graph_roles import GraphRoles
from shared.adapters.sharepoint_app_only import SharePointAppOnly
from shared.adapters.sharepoint_legacy_sign_in import SharePointLegacySignIn
from shared.adapters.upstream_http import UpstreamHttp
from shared.cloud import endpoints_for
from shared.config import Settings
from shared.domain.certificates import CertificateInfo
from shared.domain.probes import AccountProbe, Grant, ProbeResult
from shared.domain.profile import Password


class M365AccountProbe(AccountProbe):
    """:class:`~shared.domain.probes.AccountProbe` against the configured Microsoft cloud.

    :param Settings settings: ``m365_client_id``, ``upstream_timeout`` and the cloud.
    :param requests.Session session: from :func:`shared.adapters.http_session.build_session`; its
        connection pools are shared, its cookie jar is not used.
    """

    def __init__(self, settings: Settings, session: requests.Session):
        endpoints = endpoints_for(settings.cloud)
        http = UpstreamHttp(session, timeout=settings.upstream_timeout)
        self._entra = EntraSignIn(http, authority_host=endpoints.authority_host,
                                  client_id=settings.m365_client_id, scope=endpoints.graph_scope)
        self._graph = GraphRoles(http, graph_url=endpoints.graph_url)
        self._legacy = SharePointLegacySignIn(http, endpoints)
        self._app = AppSignIn(http, authority_host=endpoints.authority_host)
        self._app_only = SharePointAppOnly(http, graph_url=endpoints.graph_url)
        self.graph_scope = endpoints.graph_scope

    def sign_in_modern(self, tenant_id: str, username: str, password: Password, *,
                       correlation_id: str) -> ProbeResult:
        """1 token request (+ once per process: OpenID configuration, user realm)."""
        return self._entra.sign_in(tenant_id, username, password, correlation_id=correlation_id)

    def get_roles(self, grant: Grant, *, correlation_id: str) -> ProbeResult:
        """``GET /v1.0/me/memberOf``: 1 request per page."""
        return self._graph.get_roles(grant, correlation_id=correlation_id)

    def sign_in_legacy(self, username: str, password: Password, admin_center_url: str, *,
                       correlation_id: str) -> ProbeResult:
        """extSTS.srf + wsignin1.0: 2 requests."""
        return self._legacy.sign_in(username, password, admin_center_url, correlation_id=correlation_id)

    def check_admin_center(self, grant: Grant, admin_center_url: str, *, correlation_id: str) -> ProbeResult:
        """``POST _api/contextinfo``: 1 request."""
        return self._legacy.check_admin_center(grant, admin_center_url, correlation_id=correlation_id)

    def app_token(self, tenant_id: str, client_id: str, certificate: CertificateInfo,
                  sign: Callable[[str, bytes], bytes], *, scope: str, correlation_id: str,
                  step: str) -> ProbeResult:
        """1 token request and 1 signature by ``sign`` (Key Vault), + once per process: the
        tenant's OpenID configuration. Raises what ``sign`` raises (Key Vault unavailable)."""
        return self._app.token(tenant_id, client_id, certificate, lambda digest: sign(certificate.key_id, digest),
                               scope=scope, correlation_id=correlation_id, step=step)

    def sharepoint_root(self, grant: Grant, *, correlation_id: str) -> ProbeResult:
        """Graph ``GET /v1.0/sites/root``: 1 request."""
        return self._app_only.sharepoint_root(grant, correlation_id=correlation_id)

    def check_sharepoint_app_only(self, grant: Grant, sharepoint_url: str, *, correlation_id: str) -> ProbeResult:
        """``GET {sharepoint_url}/_api/web``: 1 request."""
        return self._app_only.check_web(grant, sharepoint_url, correlation_id=correlation_id)
