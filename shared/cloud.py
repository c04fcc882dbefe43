"""Microsoft cloud endpoints: the one place that chooses them.

The ``local`` cloud keeps the public cloud's real host names; the HTTP session maps them to the
simulator's address (see :mod:`shared.adapters.http_session`), so URLs, TLS names, msal's
port-less user-realm call and Key Vault's challenge resource stay exactly as in production.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CloudEndpoints:
    name: str
    login_host: str
    graph_host: str
    sharepoint_suffix: str
    key_vault_suffix: str
    #: Host names (or ``.suffix`` entries) that the local cloud maps to the simulator.
    mapped_hosts: tuple[str, ...] = ()

    @property
    def authority_host(self) -> str:
        return f"https://{self.login_host}"

    @property
    def graph_url(self) -> str:
        return f"https://{self.graph_host}"

    @property
    def graph_scope(self) -> str:
        return f"https://{self.graph_host}/.default"

    def default_admin_center_url(self, tenant_name: str) -> str:
        return f"https://{tenant_name}-admin.{self.sharepoint_suffix}"

    def sts_url(self) -> str:
        """SharePoint's legacy (IDCRL / WS-Trust) security token service."""
        return f"https://{self.login_host}/extSTS.srf"


_PUBLIC_HOSTS = ("login.microsoftonline.com", "graph.microsoft.com", ".sharepoint.com",
                 ".vault.azure.net", "vault.azure.net")

CLOUDS: dict[str, CloudEndpoints] = {
    "public": CloudEndpoints("public", "login.microsoftonline.com", "graph.microsoft.com",
                             "sharepoint.com", "vault.azure.net"),
    "usgov": CloudEndpoints("usgov", "login.microsoftonline.us", "graph.microsoft.us",
                            "sharepoint.us", "vault.usgovcloudapi.net"),
    "china": CloudEndpoints("china", "login.partner.microsoftonline.cn",
                            "microsoftgraph.chinacloudapi.cn", "sharepoint.cn", "vault.azure.cn"),
    "local": CloudEndpoints("local", "login.microsoftonline.com", "graph.microsoft.com",
                            "sharepoint.com", "vault.azure.net", mapped_hosts=_PUBLIC_HOSTS),
}


def endpoints_for(cloud: str) -> CloudEndpoints:
    return CLOUDS[cloud]


def is_mapped(host: str, mapped_hosts: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == m or (m.startswith(".") and host.endswith(m)) for m in mapped_hosts)
