"""App profiles' credentials end to end against the simulator, through the real SDKs: a certificate
created in Key Vault with a non-exportable key, registered on the app, and client-credentials
tokens for Graph and SharePoint whose assertion Key Vault signed. No operation ever reads a
certificate's secret (the only way Key Vault hands out a private key)."""
from __future__ import annotations

import uuid

import pytest

from shared.adapters.app_sign_in import AppSignIn
from shared.adapters.http_session import build_credential, build_transport
from shared.adapters.keyvault_certificate_store import KeyVaultCertificateStore
from shared.adapters.upstream_http import UpstreamHttp
from shared.config import Settings
from shared.domain.errors import NotFound
from tests.demo import CONTOSO

CONSENTED = "c0ffee00-0000-4000-8000-000000000001"
NOT_CONSENTED = "c0ffee00-0000-4000-8000-000000000002"
GRAPH = "https://graph.microsoft.com/.default"
SHAREPOINT = "https://contoso.sharepoint.com/.default"


@pytest.fixture
def store(sim, sim_settings, sim_session):
    from azure.keyvault.certificates import CertificateClient
    from azure.keyvault.keys.crypto import CryptographyClient

    settings = Settings.from_env(sim_settings)
    credential = build_credential(settings, sim_session)
    return KeyVaultCertificateStore(
        CertificateClient(settings.key_vault_uri, credential, transport=build_transport(settings, sim_session)),
        lambda key_id: CryptographyClient(key_id, credential, transport=build_transport(settings, sim_session)))


@pytest.fixture
def sign_in(sim_session):
    from shared.cloud import endpoints_for

    return AppSignIn(UpstreamHttp(sim_session, timeout=10), authority_host=endpoints_for("local").authority_host)


def keyvault_operations(sim) -> dict[str, int]:
    return {k: v.get("requests", 0) for k, v in sim.control.counters().items() if k.startswith("keyvault.")}


def test_tokens_signed_by_key_vault_carry_the_consented_roles_and_the_key_never_leaves(sim, store, sign_in):
    cert = store.create_certificate(f"app-{uuid.uuid4().hex[:12]}", subject="CN=m365-profiles test", validity_months=12)
    assert cert.not_after > cert.not_before and len(cert.thumbprint) == 40 and cert.key_id
    assert cert.pem().startswith("-----BEGIN CERTIFICATE-----")
    sim.control.add_app_certificate(CONSENTED, pem=cert.pem())
    sim.control.clear_counters()
    sign = lambda digest: store.sign_digest(cert.key_id, digest)  # noqa: E731
    graph = sign_in.token(CONTOSO, CONSENTED, cert, sign, scope=GRAPH, correlation_id="c1")
    sharepoint = sign_in.token(CONTOSO, CONSENTED, cert, sign, scope=SHAREPOINT, correlation_id="c1")
    assert graph.ok and sharepoint.ok, (graph, sharepoint)
    assert set(graph.role_names) == {"Sites.FullControl.All", "User.Read.All"}
    assert "Sites.FullControl.All" in sharepoint.role_names
    ops = keyvault_operations(sim)
    assert ops.get("keyvault.keys.sign") == 2  # one signature per token request
    assert not any(k.startswith("keyvault.secrets") for k in ops), ops  # nothing read a secret


def test_an_app_without_consent_gets_a_token_without_roles(sim, store, sign_in):
    cert = store.create_certificate(f"app-{uuid.uuid4().hex[:12]}", subject="CN=no consent", validity_months=12)
    sim.control.add_app_certificate(NOT_CONSENTED, pem=cert.pem())
    result = sign_in.token(CONTOSO, NOT_CONSENTED, cert, lambda d: store.sign_digest(cert.key_id, d), scope=GRAPH,
                           correlation_id="c2")
    assert result.ok and result.role_names == ()


def test_a_certificate_the_app_does_not_know_is_700027(sim, store, sign_in):
    cert = store.create_certificate(f"app-{uuid.uuid4().hex[:12]}", subject="CN=unregistered", validity_months=12)
    result = sign_in.token(CONTOSO, CONSENTED, cert, lambda d: store.sign_digest(cert.key_id, d), scope=GRAPH,
                           correlation_id="c3")
    assert (result.ok, result.error_code, result.http_status) == (False, "AADSTS700027", 401) or \
        (result.ok, result.error_code) == (False, "AADSTS700027")


def test_an_unknown_app_is_700016(sim, store, sign_in):
    cert = store.create_certificate(f"app-{uuid.uuid4().hex[:12]}", subject="CN=x", validity_months=12)
    result = sign_in.token(CONTOSO, str(uuid.uuid4()), cert, lambda d: store.sign_digest(cert.key_id, d),
                           scope=GRAPH, correlation_id="c4")
    assert (result.ok, result.error_code) == (False, "AADSTS700016")


def test_versions_and_not_found(store):
    name = f"app-{uuid.uuid4().hex[:12]}"
    first = store.create_certificate(name, subject="CN=v1", validity_months=12)
    second = store.create_certificate(name, subject="CN=v2", validity_months=12)
    assert first.version != second.version and first.thumbprint != second.thumbprint
    assert store.get_certificate(name).version == second.version
    assert store.get_certificate(name, first.version).thumbprint == first.thumbprint
    with pytest.raises(NotFound):
        store.get_certificate(f"missing-{uuid.uuid4().hex[:8]}")
