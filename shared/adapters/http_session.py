"""The one place that builds HTTP sessions, Azure SDK transports and the app's own credential.

Production and the local simulator share every code path above this module. In the ``local``
cloud, Microsoft's host names are mapped to the simulator's address the way curl's ``--resolve``
does: the TCP connection goes to ``LOCAL_CLOUD_ENDPOINT`` while TLS SNI, certificate host-name
checks and the ``Host`` header keep the real name, verified against the simulator's CA bundle.
"""
from __future__ import annotations

from typing import Any

import requests
from azure.core.exceptions import AzureError
from requests.adapters import HTTPAdapter

from shared.adapters.lean_session import LeanSession
from shared.cloud import CloudEndpoints, endpoints_for, is_mapped
from shared.config import Settings


class ResolvingAdapter(HTTPAdapter):
    """Sends requests for mapped host names to one address, keeping TLS names real."""

    def __init__(self, mapped_hosts: tuple[str, ...], address: tuple[str, int], **kwargs: Any):
        self._mapped_hosts = mapped_hosts
        self._address = address
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # noqa: D102
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host = host_params["host"]
        if is_mapped(host, self._mapped_hosts):
            host_params = dict(host_params, host=self._address[0], port=self._address[1])
            pool_kwargs = dict(pool_kwargs, server_hostname=host, assert_hostname=host)
        return host_params, pool_kwargs

    def send(self, request, **kwargs):  # noqa: D102
        from urllib.parse import urlsplit

        netloc = urlsplit(request.url).netloc
        if is_mapped(netloc.split(":")[0], self._mapped_hosts):
            request.headers["Host"] = netloc
        return super().send(request, **kwargs)


def parse_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def build_session(settings: Settings, *, pool_maxsize: int = 32) -> requests.Session:
    """A ``requests.Session`` for Microsoft endpoints of the configured cloud.

    ``trust_env`` is off so that ``REQUESTS_CA_BUNDLE`` or proxy variables of the machine cannot
    silently change which CA is trusted: public clouds use certifi's bundle, the local cloud the
    simulator's CA.
    """
    endpoints = endpoints_for(settings.cloud)
    session = LeanSession()
    if endpoints.mapped_hosts:
        adapter: HTTPAdapter = ResolvingAdapter(
            endpoints.mapped_hosts, parse_address(settings.local_cloud_endpoint),
            pool_connections=16, pool_maxsize=pool_maxsize)
        session.verify = settings.local_cloud_ca_bundle
    else:
        import certifi

        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=pool_maxsize)
        session.verify = certifi.where()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class DeadlinePassed(AzureError):
    """Raised by the app's Azure SDK transport once the open deadline has passed; not a
    ``ServiceRequestError``, so the SDK's retry policy does not retry it, and adapters map it as
    "unavailable" like any other :class:`AzureError`."""


def build_transport(settings: Settings, session: requests.Session | None = None):
    """An azure-core transport over :func:`build_session` (Key Vault, azure-identity) that keeps
    to the open Validation Test deadline (:func:`shared.domain.validation_test.deadline`)."""
    from azure.core.pipeline.transport import RequestsTransport

    class DeadlineTransport(RequestsTransport):
        def send(self, request, **kwargs):  # noqa: D102
            from shared.domain.validation_test import time_left

            left = time_left()
            if left is not None:
                if left <= 0:  # not a ServiceRequestError: the SDK's retry policy must not retry it
                    raise DeadlinePassed("the Validation Test's deadline has passed")
                for name, default in (("connection_timeout", self.connection_config.timeout),
                                      ("read_timeout", self.connection_config.read_timeout)):
                    kwargs[name] = min(kwargs.get(name) or default, left)
            return super().send(request, **kwargs)

    return DeadlineTransport(session=session or build_session(settings), session_owner=False,
                             connection_verify=(session.verify if session else None) or True)


def build_credential(settings: Settings, session: requests.Session | None = None):
    """The app's own identity, for Key Vault (and Storage when identity-based).

    Local cloud: a client secret registered in the simulator. Azure: the user-assigned managed
    identity named by ``AZURE_CLIENT_ID`` (or whatever ``DefaultAzureCredential`` finds).
    """
    from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

    endpoints: CloudEndpoints = endpoints_for(settings.cloud)
    if settings.cloud == "local":
        session = session or build_session(settings)
        return ClientSecretCredential(
            settings.azure_tenant_id or "", settings.azure_client_id or "",
            settings.azure_client_secret or "", authority=endpoints.login_host,
            transport=build_transport(settings, session))
    if settings.azure_client_id:
        return ManagedIdentityCredential(client_id=settings.azure_client_id)
    return DefaultAzureCredential(authority=endpoints.login_host)
