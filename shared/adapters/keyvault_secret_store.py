"""App passwords and webhook keys in Azure Key Vault (``azure-keyvault-secrets``).

Every failure to reach the vault becomes :class:`DependencyUnavailable`, chained to the SDK error
(``raise ... from exc``) so its status, service error code and request id reach the logs. That is
safe because the SDK's error texts are built from the response (status, reason, the vault's error
code and message) and the URL (vault and secret name), never from the request body that carries the
value; ``tests/integration/test_keyvault_secret_store.py`` checks it with a canary value.
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


def _error_code(exc: AzureError) -> str | None:
    """The vault's error code (``Forbidden``, ``Throttled``...) of an answered request."""
    error = getattr(exc, "error", None)
    return getattr(error, "code", None)


def _inner_code(exc: AzureError) -> str | None:
    inner = getattr(getattr(exc, "error", None), "innererror", None) or {}
    return inner.get("code") if isinstance(inner, dict) else None


def _retry_after(exc: AzureError) -> int:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(1, int(value)) if value else 5
    except ValueError:
        return 5


def vault_unavailable(exc: AzureError, action: str) -> DependencyUnavailable:
    """The domain error for a vault call that failed, logged with its status and error code."""
    status, code = getattr(exc, "status_code", None), _error_code(exc)
    log.warning("Key Vault %s failed: %s (HTTP %s, %s)", action, type(exc).__name__, status, code,
                extra={"dependency": "keyvault", "status": status, "error_code": code})
    return DependencyUnavailable("Key Vault", retry_after=_retry_after(exc))


class KeyVaultSecretStore(SecretStore):
    """:class:`SecretStore` on one vault; one round trip per call (``get_values``: 1 + versions read)."""

    def __init__(self, client: SecretClient):
        self._client = client

    def _fail(self, exc: AzureError, action: str) -> DependencyUnavailable:
        return vault_unavailable(exc, action)

    def _tolerating_404(self, action: str, call) -> None:
        """One vault call for which "not found" is already the wanted state."""
        try:
            call()
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._fail(exc, action) from exc

    def ping(self) -> None:
        """Read a secret that need not exist: found or 404 is up (authenticated and authorized);
        401/403, throttling or no answer is down."""
        self._tolerating_404("ping", lambda: self._client.get_secret("health-probe"))

    def set_secret(self, name: str, value: Password, *, tags: dict[str, str] | None = None) -> SecretRef:
        try:
            secret = self._client.set_secret(name, value.reveal(), content_type="application/x-app-password",
                                             tags=tags)
        except AzureError as exc:
            raise self._fail(exc, "set") from exc
        return SecretRef(name, secret.properties.version or "")

    def get_secret(self, ref: SecretRef) -> Password:
        """A disabled version (``403 Forbidden``, inner code ``SecretDisabled``) is missing too:
        it was switched off as an orphan and will never be readable again."""
        try:
            return Password(self._client.get_secret(ref.name, ref.version).value or "")
        except ResourceNotFoundError as exc:
            raise SecretMissing(ref.name) from exc
        except HttpResponseError as exc:
            if exc.status_code == 403 and _inner_code(exc) == "SecretDisabled":
                raise SecretMissing(ref.name) from exc
            raise self._fail(exc, "get") from exc
        except AzureError as exc:
            raise self._fail(exc, "get") from exc

    def get_values(self, name: str, *, limit: int = 3) -> list[str]:
        try:
            listed = list(enumerate(self._client.list_properties_of_secret_versions(name)))
            # created_on has whole seconds: versions of one second keep the vault's (creation) order
            listed.sort(key=lambda iv: (iv[1].created_on.timestamp() if iv[1].created_on else 0, iv[0]),
                        reverse=True)
            versions = [v for _, v in listed if v.enabled]
            return [self._client.get_secret(name, v.version).value or "" for v in versions[:limit]]
        except ResourceNotFoundError:
            return []
        except AzureError as exc:
            raise self._fail(exc, "list") from exc

    def disable_version(self, ref: SecretRef) -> None:
        """A version that does not exist is already unusable: a no-op."""
        self._tolerating_404("disable", lambda: self._client.update_secret_properties(
            ref.name, ref.version, enabled=False))

    def delete_secret(self, name: str) -> None:
        # Soft delete; no need to wait for the poller. Already gone is fine.
        self._tolerating_404("delete", lambda: self._client.begin_delete_secret(name))

    def recover_secret(self, name: str) -> None:
        try:
            self._client.begin_recover_deleted_secret(name)
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return
            raise self._fail(exc, "recover") from exc
        except AzureError as exc:
            raise self._fail(exc, "recover") from exc
