"""The app profile's Validation Test through ``M365AccountProbe`` and ``KeyVaultCertificateStore``
against the simulator: msal's real confidential client, client assertions signed by the simulator's
Key Vault (the key never leaves it), Graph ``sites/root`` and SharePoint app-only REST. Request and
Key Vault operation counts come from the simulator's per-endpoint counters."""
from __future__ import annotations

import json
import uuid

import pytest

from shared.adapters.http_session import build_credential, build_transport
from shared.adapters.keyvault_certificate_store import KeyVaultCertificateStore
from shared.adapters.m365_probe import M365AccountProbe
from shared.config import Settings
from shared.contract.validation import outcome_json
from shared.domain.app_validation import admin_consent_url
from shared.domain.validation import AppValidationForm
from shared.domain.validation_test import run_validation_test
from tests.demo import CONTOSO

CONSENTED = "c0ffee00-0000-4000-8000-000000000001"
NOT_CONSENTED = "c0ffee00-0000-4000-8000-000000000002"
SHAREPOINT = "https://contoso.sharepoint.com"
#: The simulator's counters of the requests an app profile's test sends (``entra.token`` and
#: ``sharepoint.api`` also count them, as parents).
UPSTREAM = ("entra.token.client_credentials", "graph.app", "sharepoint.app")
#: Every upstream counter family: nothing else is reached (no discovery after the warm-up, no ROPC...).
FAMILIES = ("entra.", "graph", "sharepoint.")


@pytest.fixture
def settings(sim_settings) -> Settings:
    return Settings.from_env(sim_settings)


@pytest.fixture
def store(settings, sim_session):
    from azure.keyvault.certificates import CertificateClient
    from azure.keyvault.keys.crypto import CryptographyClient

    credential = build_credential(settings, sim_session)
    return KeyVaultCertificateStore(
        CertificateClient(settings.key_vault_uri, credential, transport=build_transport(settings, sim_session)),
        lambda key_id: CryptographyClient(key_id, credential, transport=build_transport(settings, sim_session)))


@pytest.fixture
def probe(settings, sim_session) -> M365AccountProbe:
    return M365AccountProbe(settings, sim_session)


@pytest.fixture
def certificate(store):
    def make(subject="CN=m365-profiles app probe"):
        return store.create_certificate(f"app-{uuid.uuid4().hex[:12]}", subject=subject, validity_months=12)
    return make


@pytest.fixture
def validate(sim, probe, store, settings):
    """Run one app profile's Validation Test after a warm-up (the tenant's OpenID configuration is
    fetched once per process); returns (outcome, upstream requests, Key Vault operations)."""

    def run(client_id, cert, *, sharepoint_url=SHAREPOINT, previous=None, correlation_id="cid-app"):
        form = AppValidationForm(CONTOSO, client_id, cert, store.sign_digest,
                                 admin_consent_url=admin_consent_url("https://login.microsoftonline.com", CONTOSO,
                                                                     client_id),
                                 sharepoint_url=sharepoint_url, previous_certificate=previous)
        run_validation_test(form, probe=probe, reserved_ip_ranges=settings.reserved_ip_ranges,
                            correlation_id="warm-up")
        sim.control.clear_counters()
        outcome = run_validation_test(form, probe=probe, reserved_ip_ranges=settings.reserved_ip_ranges,
                                      correlation_id=correlation_id)
        counters = {name: c["requests"] for name, c in sim.control.counters().items() if c.get("requests")}
        upstream = {k: v for k, v in counters.items() if k in UPSTREAM}
        parents = {"entra.token": upstream.get("entra.token.client_credentials", 0),
                   "graph": upstream.get("graph.app", 0), "sharepoint.api": upstream.get("sharepoint.app", 0)}
        others = {k: v for k, v in counters.items()
                  if k.startswith(FAMILIES) and k not in UPSTREAM and v != parents.get(k)}
        assert not others, ("other upstream requests", counters)
        keyvault = {k: v for k, v in counters.items() if k.startswith("keyvault.")}
        return outcome, upstream, keyvault

    return run


def test_a_consented_app_passes_with_3_requests_and_2_signatures(sim, certificate, validate):
    cert = certificate()
    sim.control.add_app_certificate(CONSENTED, pem=cert.pem())
    outcome, upstream, keyvault = validate(CONSENTED, cert)
    assert (outcome.status, outcome.message_id) == ("passed", None), outcome
    assert upstream == {"entra.token.client_credentials": 2, "sharepoint.app": 1}, upstream
    assert outcome.evidence.upstream_requests == 3
    assert keyvault.get("keyvault.keys.sign") == 2, keyvault
    assert not any(k.startswith("keyvault.secrets") for k in keyvault), keyvault  # no key, no password read
    # Nothing reads a certificate or a secret; the only other operation is azure-keyvault-keys'
    # CryptographyClient fetching the *public* key before its first operation (keys/get, once per
    # client instance: the store builds one per signature).
    assert set(keyvault) <= {"keyvault.keys.sign", "keyvault.keys.get"}, keyvault
    assert outcome.granted_permissions == {"graph": ("Sites.FullControl.All", "User.Read.All"),
                                           "sharepoint": ("Sites.FullControl.All",)}
    assert outcome.missing_permissions == {"graph": (), "sharepoint": ()}
    assert outcome.certificate.thumbprint == cert.thumbprint and outcome.certificate.days_left >= 360
    assert outcome.certificate_rotated is True and outcome.sharepoint_url == SHAREPOINT
    assert [c.status for c in outcome.checks] == ["passed"] * 4
    print("\nknown URL:", upstream, keyvault)


def test_discovery_costs_one_graph_request(sim, certificate, validate):
    cert = certificate()
    sim.control.add_app_certificate(CONSENTED, pem=cert.pem())
    outcome, upstream, keyvault = validate(CONSENTED, cert, sharepoint_url=None)
    assert outcome.passed and outcome.sharepoint_url == SHAREPOINT
    assert upstream == {"entra.token.client_credentials": 2, "graph.app": 1, "sharepoint.app": 1}, upstream
    assert outcome.evidence.upstream_requests == 4 and keyvault.get("keyvault.keys.sign") == 2
    print("\ndiscovered URL:", upstream, keyvault)


def test_an_app_without_consent_is_consent_missing_with_the_link(sim, certificate, validate):
    cert = certificate("CN=no consent")
    sim.control.add_app_certificate(NOT_CONSENTED, pem=cert.pem())
    outcome, upstream, _ = validate(NOT_CONSENTED, cert)
    assert (outcome.status, outcome.message_id) == ("failed", "APP_CONSENT_MISSING")
    assert any(f"adminconsent?client_id={NOT_CONSENTED}" in s for s in outcome.solutions)
    assert outcome.granted_permissions == {"graph": (), "sharepoint": ()}
    assert upstream == {"entra.token.client_credentials": 2}, upstream


def test_no_consent_with_discovery_stops_at_sites_root(sim, certificate, validate):
    cert = certificate("CN=no consent")
    sim.control.add_app_certificate(NOT_CONSENTED, pem=cert.pem())
    outcome, upstream, _ = validate(NOT_CONSENTED, cert, sharepoint_url=None)
    assert outcome.message_id == "APP_CONSENT_MISSING" and outcome.sharepoint_url is None
    assert upstream == {"entra.token.client_credentials": 1, "graph.app": 1}, upstream


def test_an_unregistered_certificate_is_not_registered(certificate, validate):
    outcome, upstream, keyvault = validate(CONSENTED, certificate("CN=unregistered"))
    assert (outcome.message_id, outcome.evidence.aadsts_code) == ("CERTIFICATE_NOT_REGISTERED", "AADSTS700027")
    assert upstream == {"entra.token.client_credentials": 1} and keyvault.get("keyvault.keys.sign") == 1


def test_rotation_overlap_signs_with_the_previous_certificate(sim, certificate, validate):
    previous, current = certificate("CN=previous"), certificate("CN=current not registered yet")
    sim.control.add_app_certificate(CONSENTED, pem=previous.pem())
    outcome, upstream, keyvault = validate(CONSENTED, current, previous=previous)
    assert outcome.passed and outcome.certificate_rotated is False
    assert outcome.certificate.thumbprint == previous.thumbprint
    assert upstream == {"entra.token.client_credentials": 3, "sharepoint.app": 1} and keyvault["keyvault.keys.sign"] == 3


def test_missing_sharepoint_permission(sim, certificate, validate):
    cert = certificate()
    sim.control.add_app_certificate(CONSENTED, pem=cert.pem())
    sim.control.patch_app(CONSENTED, {"permissions": {"sharepoint": ["Sites.Read.All"]}})
    outcome, _, _ = validate(CONSENTED, cert)
    assert outcome.message_id == "APP_PERMISSION_MISSING", outcome
    assert outcome.missing_permissions["sharepoint"] == ("Sites.FullControl.All",)
    assert "SharePoint: Sites.FullControl.All" in outcome.cause


def test_a_disabled_app(sim, certificate, validate):
    cert = certificate()
    sim.control.add_app_certificate(CONSENTED, pem=cert.pem())
    sim.control.patch_app(CONSENTED, {"enabled": False})
    outcome, _, _ = validate(CONSENTED, cert)
    assert (outcome.message_id, outcome.evidence.aadsts_code) == ("APP_DISABLED", "AADSTS7000112")


def test_nothing_secret_in_the_outcome(sim, certificate, validate):
    cert = certificate()
    sim.control.add_app_certificate(CONSENTED, pem=cert.pem())
    outcome, _, _ = validate(CONSENTED, cert)
    text = json.dumps(outcome_json(outcome))
    assert "eyJ" not in text and "PRIVATE" not in text and "BEGIN CERTIFICATE" not in text


# --- the adapter's answers, one request each -----------------------------------------------------

def test_sharepoint_refuses_a_secret_token_as_app_only_refused(sim, sim_session, probe):
    import msal

    from shared.domain.probes import Grant

    sim.control.patch_app(CONSENTED, {"secrets": ["backup-secret"]})
    app = msal.ConfidentialClientApplication(CONSENTED, authority=f"https://login.microsoftonline.com/{CONTOSO}",
                                             client_credential="backup-secret", http_client=sim_session,
                                             instance_discovery=False)
    token = app.acquire_token_for_client([f"{SHAREPOINT}/.default"])["access_token"]
    result = probe.check_sharepoint_app_only(Grant(token), SHAREPOINT, correlation_id="cid-secret")
    assert (result.ok, result.error_code, result.http_status, result.step, result.requests) == (
        False, "SP_APP_ONLY_REFUSED", 401, "appOnlyWeb", 1)
    assert result.error_description == "Unsupported app only token."
    assert token not in repr(result)


def test_sites_root_without_a_sites_role_is_graph_forbidden(sim, certificate, store, probe):
    cert = certificate()
    sim.control.add_app_certificate(CONSENTED, pem=cert.pem())
    sim.control.patch_app(CONSENTED, {"permissions": {"graph": ["User.Read.All"]}})
    token = probe.app_token(CONTOSO, CONSENTED, cert, store.sign_digest, scope=probe.graph_scope,
                            correlation_id="cid-root", step="graphToken")
    assert token.ok and token.role_names == ("User.Read.All",) and token.step == "graphToken"
    result = probe.sharepoint_root(token.grant, correlation_id="cid-root")
    assert (result.ok, result.error_code, result.http_status, result.step) == (False, "GRAPH_FORBIDDEN", 403,
                                                                               "sitesRoot")
    assert result.error_description == "accessDenied: Access denied"
