"""Key Vault secrets through the real azure-identity credential and azure-keyvault-secrets client."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.adapters.http_session import build_credential, build_transport
from shared.config import Settings

VAULT = "https://demo.vault.azure.net"


@pytest.fixture
def secrets(sim, sim_settings, sim_session) -> SecretClient:
    settings = Settings.from_env(sim_settings)
    credential = build_credential(settings, sim_session)
    return SecretClient(settings.key_vault_uri, credential, transport=build_transport(settings, sim_session))


def test_secret_lifecycle(sim, secrets):
    first = secrets.set_secret("profile-t1-p1", "app-password-1", content_type="text/plain")
    second = secrets.set_secret("profile-t1-p1", "app-password-2")
    assert secrets.get_secret("profile-t1-p1").value == "app-password-2"
    assert secrets.get_secret("profile-t1-p1", first.properties.version).value == "app-password-1"
    versions = {p.version for p in secrets.list_properties_of_secret_versions("profile-t1-p1")}
    assert versions == {first.properties.version, second.properties.version}
    assert [p.name for p in secrets.list_properties_of_secrets()] == ["profile-t1-p1"]

    deleted = secrets.begin_delete_secret("profile-t1-p1").result()
    assert deleted.recovery_id == f"{VAULT}/deletedsecrets/profile-t1-p1"
    assert deleted.scheduled_purge_date > deleted.deleted_date
    assert secrets.get_deleted_secret("profile-t1-p1").name == "profile-t1-p1"
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("profile-t1-p1")
    with pytest.raises(ResourceExistsError, match="deleted but recoverable"):
        secrets.set_secret("profile-t1-p1", "again")
    assert [d.name for d in secrets.list_deleted_secrets()] == ["profile-t1-p1"]

    secrets.begin_recover_deleted_secret("profile-t1-p1").result()
    assert secrets.get_secret("profile-t1-p1").value == "app-password-2"

    secrets.begin_delete_secret("profile-t1-p1").result()
    secrets.purge_deleted_secret("profile-t1-p1")
    with pytest.raises(ResourceNotFoundError):
        secrets.get_deleted_secret("profile-t1-p1")
    secrets.set_secret("profile-t1-p1", "fresh")
    assert len(list(secrets.list_properties_of_secret_versions("profile-t1-p1"))) == 1


def test_paging_follows_next_link(sim, secrets):
    for i in range(30):
        secrets.set_secret(f"s{i:02d}", "x")
    assert len(list(secrets.list_properties_of_secrets())) == 30


def test_missing_secret_is_secret_not_found(sim, secrets):
    with pytest.raises(ResourceNotFoundError) as info:
        secrets.get_secret("nope")
    assert info.value.error.code == "SecretNotFound"


def test_challenge_then_bearer(sim, sim_session):
    resp = sim_session.get(f"{VAULT}/secrets/x/", params={"api-version": "7.5"})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == ('Bearer authorization="https://login.microsoftonline.com/'
                                                '00000000-0000-4000-8000-0000000000aa", '
                                                'resource="https://vault.azure.net"')
    assert resp.json() == {"error": {"code": "Unauthorized",
                                     "message": "AKV10000: Request is missing a Bearer or PoP token."}}
    graph_token = sim.control.mint_token("https://graph.microsoft.com")
    resp = sim_session.get(f"{VAULT}/secrets/x/", params={"api-version": "7.5"},
                           headers={"Authorization": f"Bearer {graph_token}"})
    assert resp.status_code == 401 and "AKV10022" in resp.json()["error"]["message"]


@pytest.mark.parametrize("params, fragment", [({}, "api-version"), ({"api-version": "1999-01-01"},
                                                                     "is not recognized")])
def test_api_version_is_required(sim, sim_session, params, fragment):
    resp = sim_session.get(f"{VAULT}/secrets", params=params)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "BadParameter" and fragment in resp.json()["error"]["message"]


def test_app_must_be_allowed_on_the_vault(sim, secrets):
    sim.control.patch_scenario({"vaults": [{"name": "demo", "tenant": "00000000-0000-4000-8000-0000000000aa",
                                            "allowedApps": []}]})
    with pytest.raises(HttpResponseError) as info:
        secrets.set_secret("x", "y")
    assert info.value.status_code == 403 and "does not have secrets set permission" in info.value.message
