"""App profiles' certificates in Key Vault (azure-keyvault-certificates) and their signatures
(azure-keyvault-keys ``CryptographyClient.sign``): :class:`KeyVaultCertificateStore`.

Round trips: create 2 (the create and one poll of the pending operation, which the vault finishes
in seconds) + 1 read of the new version; import 1; get 1; sign 1 (+ once per key and process: the
public key, read by the ``CryptographyClient``). No operation ever reads the
certificate's secret, the only way Key Vault hands out a private key (and a non-exportable one
never holds it).
"""
from __future__ import annotations

import functools
from typing import Callable

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.certificates import (CertificateClient, CertificatePolicy, KeyType, KeyVaultCertificate,
                                         WellKnownIssuerNames)
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

from shared.adapters.keyvault_secret_store import vault_unavailable
from shared.domain.certificates import CertificateInfo, sha256_thumbprint
from shared.domain.errors import DependencyUnavailable, FieldError, InvalidInput, NotFound
from shared.domain.ports import CertificateStore
from shared.domain.profile import Password


def _info(cert: KeyVaultCertificate) -> CertificateInfo:
    props = cert.properties
    return CertificateInfo(name=cert.name, version=props.version, thumbprint=props.x509_thumbprint.hex(),
                           thumbprint_sha256=sha256_thumbprint(cert.cer), not_before=props.not_before,
                           not_after=props.expires_on, key_id=cert.key_id, cer=bytes(cert.cer))


#: ``CryptographyClient`` objects kept, one per key version: each reads its key's public part (one
#: ``keys.get``, never the private key) before its first signature, so a kept client makes every later
#: signature one round trip. Bounded: a process signs for at most this many certificates at once.
CRYPTO_CLIENTS = 512


class KeyVaultCertificateStore(CertificateStore):
    """:param CertificateClient certificates: the vault's certificate client.
    :param crypto: builds the ``CryptographyClient`` of a key id (same credential and transport)."""

    def __init__(self, certificates: CertificateClient, crypto: Callable[[str], CryptographyClient]):
        self._certificates = certificates
        self._crypto = functools.lru_cache(maxsize=CRYPTO_CLIENTS)(crypto)

    def _fail(self, exc: AzureError, action: str) -> DependencyUnavailable:
        return vault_unavailable(exc, f"certificate {action}")

    def ping(self) -> None:
        try:
            self._certificates.get_certificate("health-probe")
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._fail(exc, "ping") from exc

    def create_certificate(self, name: str, *, subject: str, validity_months: int) -> CertificateInfo:
        policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.self, subject=subject, exportable=False,
                                   key_type=KeyType.rsa, key_size=2048, reuse_key=False,
                                   validity_in_months=validity_months)
        try:
            created = self._certificates.begin_create_certificate(name, policy).result()
        except AzureError as exc:
            raise self._fail(exc, "create") from exc
        if not isinstance(created, KeyVaultCertificate):  # the operation ended without a certificate
            raise DependencyUnavailable("Key Vault")
        return _info(created)

    def import_certificate(self, name: str, pfx: bytes, password: Password | None) -> CertificateInfo:
        try:
            imported = self._certificates.import_certificate(
                name, pfx, password=password.reveal() if password else None)
        except HttpResponseError as exc:
            if exc.status_code == 400:
                raise InvalidInput([FieldError("certificate.pfx", "format",
                                               "Key Vault could not read the PFX (or its password is wrong).")]) from exc
            raise self._fail(exc, "import") from exc
        except AzureError as exc:
            raise self._fail(exc, "import") from exc
        return _info(imported)

    def get_certificate(self, name: str, version: str | None = None) -> CertificateInfo:
        try:
            cert = (self._certificates.get_certificate_version(name, version) if version
                    else self._certificates.get_certificate(name))
        except ResourceNotFoundError as exc:
            raise NotFound("Certificate", name) from exc
        except AzureError as exc:
            raise self._fail(exc, "get") from exc
        return _info(cert)

    def delete_certificate(self, name: str) -> None:
        """1 round trip: the delete starts; its poller is not waited for (soft delete is immediate
        for reads, the purge-protection window does the rest)."""
        try:
            self._certificates.begin_delete_certificate(name)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._fail(exc, "delete") from exc

    def sign_digest(self, key_id: str, digest: bytes) -> bytes:
        try:
            return self._crypto(key_id).sign(SignatureAlgorithm.rs256, digest).signature
        except AzureError as exc:
            raise self._fail(exc, "sign") from exc
