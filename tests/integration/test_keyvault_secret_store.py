"""KeyVaultSecretStore against the simulator's Key Vault: a failed SetSecret chains the SDK error
(``raise ... from exc``) and still never shows the value, in any text a log or a traceback prints."""
from __future__ import annotations

import logging
import traceback
import uuid

import pytest
from azure.core.exceptions import AzureError, HttpResponseError
from azure.keyvault.secrets import SecretClient

from shared.adapters.http_session import build_credential, build_transport
from shared.adapters.keyvault_secret_store import CLIENT_OPTIONS, KeyVaultSecretStore
from shared.config import Settings
from shared.domain.errors import DependencyUnavailable, SecretMissing
from shared.domain.profile import Password, SecretRef

VAULT_TENANT = "00000000-0000-4000-8000-0000000000aa"


@pytest.fixture
def store(sim, sim_settings, sim_session) -> KeyVaultSecretStore:
    settings = Settings.from_env(sim_settings)
    return KeyVaultSecretStore(SecretClient(settings.key_vault_uri, build_credential(settings, sim_session),
                                            transport=build_transport(settings, sim_session), **CLIENT_OPTIONS))


def _fault_503(sim, name):
    sim.control.add_fault("keyvault", status=503, retryAfter=0)


def _throttled(sim, name):
    sim.control.add_fault("keyvault", status=429, retryAfter=7)


def _reset(sim, name):
    sim.control.add_fault("keyvault", action="reset")


def _forbidden(sim, name):
    sim.control.patch_scenario({"vaults": [{"name": "demo", "tenant": VAULT_TENANT, "allowedApps": []}]})


def _deleted(sim, name):
    """The name is soft-deleted: the vault answers 409 ObjectIsDeletedButRecoverable."""


FAILURES = {
    # case: (set-up, HTTP status the SDK error carries, the vault's error code)
    "503": (_fault_503, 503, "ServiceUnavailable"),
    "429": (_throttled, 429, "Throttled"),
    "connection-reset": (_reset, None, None),
    "403-forbidden": (_forbidden, 403, "Forbidden"),
    "409-deleted": (_deleted, 409, "Conflict"),
    "400-bad-name": (None, 400, "BadParameter"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failed_set_secret_keeps_its_cause_and_never_shows_the_value(sim, store, caplog, case):
    setup, status, code = FAILURES[case]
    canary = "CANARY-" + uuid.uuid4().hex
    name = f"profile-{uuid.uuid4().hex[:12]}"
    if case == "409-deleted":
        store.set_secret(name, Password("earlier value"))
        store.delete_secret(name)
    if case == "400-bad-name":
        name = "not_a_valid_name"  # the vault allows only letters, digits and dashes
    if setup:
        setup(sim, name)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(DependencyUnavailable) as info:
        store.set_secret(name, Password(canary))

    exc = info.value
    cause = exc.__cause__
    assert isinstance(cause, AzureError), "the SDK error is chained, not dropped"
    if status is not None:
        assert isinstance(cause, HttpResponseError) and cause.status_code == status
        assert cause.error is not None and cause.error.code == code
    texts = {
        "str(exc)": str(exc), "repr(exc)": repr(exc), "str(cause)": str(cause), "repr(cause)": repr(cause),
        "traceback": "".join(traceback.format_exception(exc)),
        "logs": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
    }
    for where, text in texts.items():
        assert canary not in text, f"the secret value appears in {where}"
    warning = [r for r in caplog.records if r.name == "shared.adapters.keyvault_secret_store"]
    assert warning, "the failure is logged"
    assert warning[-1].status == status and warning[-1].error_code == code
    if status is not None:
        assert f"HTTP {status}" in warning[-1].getMessage() and code in warning[-1].getMessage()
    if case == "429":
        assert exc.retry_after == 7


def test_a_bad_version_is_secret_missing_and_chained(store):
    name = f"profile-{uuid.uuid4().hex[:12]}"
    store.set_secret(name, Password("value"))
    with pytest.raises(SecretMissing) as info:
        store.get_secret(SecretRef(name, "0" * 32))
    assert isinstance(info.value.__cause__, HttpResponseError) and info.value.__cause__.status_code == 404


def test_ping_is_up_on_404_and_down_when_forbidden(sim, store):
    store.ping()  # 'health-probe' does not exist: an authenticated 404 is up
    _forbidden(sim, "")
    with pytest.raises(DependencyUnavailable) as info:
        store.ping()
    assert info.value.__cause__.status_code == 403
