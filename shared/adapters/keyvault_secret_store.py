"""App passwords and webhook keys in Azure Key Vault (``azure-keyvault-secrets``).

Every failure to reach the vault becomes :class:`DependencyUnavailable`; the secret value is never
part of an exception text or log line (the SDK's errors do not echo request bodies).
"""
from __future__ import annotations

import logging

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.domain.errors import DependencyUnavailable, SecretMissing
from shared.domain.ports import SecretStore
from shared.domain.profile import Password, SecretRef

log = logging.getLogger(__name__)

#: Fail fast: the HTTP caller gets a 503 with Retry-After rather than waiting on back-off.
CLIENT_OPTIONS = dict(retry_total=1, retry_backoff_factor=0.2, connection_timeout=5, read_timeout=10)


def _retry_after(exc: AzureError) -> int:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(1, int(value)) if value else 5
    except ValueError:
        return 5


class KeyVaultSecretStore(SecretStore):
    def __init__(self, client: SecretClient):
        self._client = client

    def _fail(self, exc: AzureError, action: str) -> DependencyUnavailable:
        log.warning("Key Vault %s failed: %s", action, type(exc).__name__,
                    extra={"dependency": "keyvault", "status": getattr(exc, "status_code", None)})
        return DependencyUnavailable("Key Vault", retry_after=_retry_after(exc))

    def set_secret(self, name: str, value: Password, *, tags: dict[str, str] | None = None) -> SecretRef:
        try:
            secret = self._client.set_secret(name, value.reveal(), content_type="application/x-app-password",
                                             tags=tags)
        except AzureError as exc:
            raise self._fail(exc, "set") from None
        return SecretRef(name, secret.properties.version or "")

    def get_secret(self, ref: SecretRef) -> Password:
        try:
            return Password(self._client.get_secret(ref.name, ref.version).value or "")
        except ResourceNotFoundError:
            raise SecretMissing(ref.name) from None
        except AzureError as exc:
            raise self._fail(exc, "get") from None

    def get_values(self, name: str, *, limit: int = 3) -> list[str]:
        try:
            versions = [v for v in self._client.list_properties_of_secret_versions(name) if v.enabled]
            versions.sort(key=lambda v: v.created_on or 0, reverse=True)
            return [self._client.get_secret(name, v.version).value or "" for v in versions[:limit]]
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise self._fail(exc, "list") from None

    def disable_version(self, ref: SecretRef) -> None:
        try:
            self._client.update_secret_properties(ref.name, ref.version, enabled=False)
        except AzureError as exc:
            raise self._fail(exc, "disable") from None

    def delete_secret(self, name: str) -> None:
        try:
            self._client.begin_delete_secret(name)  # soft delete; no need to wait for the poller
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._fail(exc, "delete") from None

    def recover_secret(self, name: str) -> None:
        try:
            self._client.begin_recover_deleted_secret(name)
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return
            raise self._fail(exc, "recover") from None
        except AzureError as exc:
            raise self._fail(exc, "recover") from None
