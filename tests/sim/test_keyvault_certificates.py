"""Key Vault certificates and keys through the real azure-keyvault-certificates and azure-keyvault-keys
clients, on the product's resolving session (as tests/sim/test_keyvault.py does for secrets)."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.certificates import (CertificateClient, CertificateContentType, CertificatePolicy,
                                         KeyType, WellKnownIssuerNames)
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from shared.adapters.http_session import build_credential, build_transport
from shared.config import Settings

VAULT = "https://demo.vault.azure.net"


@pytest.fixture
def clients(sim, sim_settings, sim_session):
    settings = Settings.from_env(sim_settings)
    credential = build_credential(settings, sim_session)

    def transport():
        return build_transport(settings, sim_session)

    class Clients:
        certificates = CertificateClient(settings.key_vault_uri, credential, transport=transport())
        keys = KeyClient(settings.key_vault_uri, credential, transport=transport())
        secrets = SecretClient(settings.key_vault_uri, credential, transport=transport())

        @staticmethod
        def crypto(key_id: str) -> CryptographyClient:
            return CryptographyClient(key_id, credential, transport=transport())

    sim.control.clear_counters()
    return Clients


def app_policy(subject: str = "CN=m365-profile-app", months: int = 12, size: int = 2048) -> CertificatePolicy:
    """What the product asks for: self-issued, RSA, key NOT exportable."""
    return CertificatePolicy(issuer_name=WellKnownIssuerNames.self, subject=subject, validity_in_months=months,
                             key_type=KeyType.rsa, key_size=size, exportable=False, reuse_key=False,
                             content_type=CertificateContentType.pkcs12)


def ops(sim) -> dict[str, int]:
    return {name: c["requests"] for name, c in sim.control.counters().items() if name.startswith("keyvault.")}


def test_create_non_exportable_certificate_and_sign_without_export(sim, clients):
    poller = clients.certificates.begin_create_certificate("app-t1-p1", app_policy(months=3))
    cert = poller.result()
    assert poller.status() == "completed"
    x = x509.load_der_x509_certificate(bytes(cert.cer))
    assert x.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "m365-profile-app"
    assert x.issuer == x.subject and x.public_key().key_size == 2048
    assert cert.properties.x509_thumbprint == hashlib.sha1(bytes(cert.cer)).digest()
    assert cert.id == f"{VAULT}/certificates/app-t1-p1/{cert.properties.version}"
    assert cert.key_id == f"{VAULT}/keys/app-t1-p1/{cert.properties.version}"
    assert cert.secret_id == f"{VAULT}/secrets/app-t1-p1/{cert.properties.version}"
    nbf, exp = cert.properties.not_before, cert.properties.expires_on
    assert nbf == x.not_valid_before_utc and exp == x.not_valid_after_utc
    assert 89 <= (exp - nbf).days <= 93
    assert cert.policy.exportable is False and cert.policy.key_size == 2048
    assert cert.properties.enabled is True and cert.properties.created_on is not None

    # Sign a client-assertion digest in Key Vault; verify it with the certificate's public key.
    digest = hashlib.sha256(b"header.payload").digest()
    result = clients.crypto(cert.key_id).sign(SignatureAlgorithm.rs256, digest)
    assert result.key_id == cert.key_id
    x.public_key().verify(result.signature, b"header.payload", padding.PKCS1v15(), hashes.SHA256())
    jwk = clients.keys.get_key("app-t1-p1").key
    assert jwk.d is None and jwk.p is None and jwk.q is None  # public material only
    assert int.from_bytes(jwk.n, "big") == x.public_key().public_numbers().n

    counted = ops(sim)
    assert counted["keyvault.certificates.create"] == 1
    assert counted["keyvault.certificates.getOperation"] >= 1
    assert counted["keyvault.keys.sign"] == 1
    assert counted["keyvault.keys.get"] >= 1  # CryptographyClient reads the public key first
    assert not any(name.startswith("keyvault.secrets.") for name in counted)  # the key never left


def test_backing_secret_of_a_non_exportable_certificate_has_no_private_key(sim, clients):
    clients.certificates.begin_create_certificate("app-t1-p2", app_policy()).result()
    secret = clients.secrets.get_secret("app-t1-p2")
    assert secret.properties.managed is True and secret.properties.content_type == "application/x-pkcs12"
    assert secret.properties.key_id.startswith(f"{VAULT}/keys/app-t1-p2/")
    bundle = pkcs12.load_pkcs12(base64.b64decode(secret.value), None)
    assert bundle.key is None  # Learn: "the private key isn't part of the value when it's retrieved as a secret"
    certs = [c.certificate for c in ([bundle.cert] if bundle.cert else []) + bundle.additional_certs]
    assert [c.public_bytes(serialization.Encoding.DER) for c in certs] == [
        bytes(clients.certificates.get_certificate("app-t1-p2").cer)]
    counted = ops(sim)
    assert counted["keyvault.secrets.get"] == 1 and "keyvault.secrets.getWithPrivateKey" not in counted
    with pytest.raises(HttpResponseError) as info:
        clients.secrets.set_secret("app-t1-p2", "overwrite")
    assert info.value.status_code == 403


def test_exportable_certificate_secret_is_counted_as_carrying_the_key(sim, clients):
    policy = app_policy()
    policy._exportable = True
    policy._content_type = CertificateContentType.pem
    clients.certificates.begin_create_certificate("exportable", policy).result()
    value = clients.secrets.get_secret("exportable").value
    assert "-----BEGIN PRIVATE KEY-----" in value and "-----BEGIN CERTIFICATE-----" in value
    assert ops(sim)["keyvault.secrets.getWithPrivateKey"] == 1


def _pfx(password: bytes, subject: str = "demo-app") -> tuple[bytes, x509.Certificate]:
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=200)).sign(key, hashes.SHA256()))
    pfx = pkcs12.serialize_key_and_certificates(b"demo-app", key, cert, None,
                                                serialization.BestAvailableEncryption(password))
    return pfx, cert


def test_import_pfx_with_password_then_sign(sim, clients):
    pfx, original = _pfx(b"demo")
    policy = CertificatePolicy(issuer_name=WellKnownIssuerNames.unknown, exportable=False,
                               content_type=CertificateContentType.pkcs12, key_type=KeyType.rsa,
                               subject="CN=demo-app")
    imported = clients.certificates.import_certificate("imported-app", pfx, password="demo", policy=policy)
    assert bytes(imported.cer) == original.public_bytes(serialization.Encoding.DER)
    assert imported.policy.issuer_name == "Unknown" and imported.policy.exportable is False
    assert imported.properties.expires_on == original.not_valid_after_utc
    digest = hashlib.sha256(b"assertion").digest()
    signature = clients.crypto(imported.key_id).sign(SignatureAlgorithm.rs256, digest).signature
    original.public_key().verify(signature, b"assertion", padding.PKCS1v15(), hashes.SHA256())
    key, _, _ = pkcs12.load_key_and_certificates(base64.b64decode(clients.secrets.get_secret("imported-app").value),
                                                 None)
    assert key is None
    assert ops(sim)["keyvault.certificates.import"] == 1

    with pytest.raises(HttpResponseError) as info:
        clients.certificates.import_certificate("wrong-password", pfx, password="nope")
    assert info.value.status_code == 400 and "PKCS#12" in info.value.message


def test_versions_stay_readable_after_a_re_create(sim, clients):
    first = clients.certificates.begin_create_certificate("rotating", app_policy()).result()
    second = clients.certificates.begin_create_certificate("rotating", app_policy()).result()
    assert first.properties.version != second.properties.version
    assert first.cer != second.cer
    assert clients.certificates.get_certificate("rotating").properties.version == second.properties.version
    old = clients.certificates.get_certificate_version("rotating", first.properties.version)
    assert old.cer == first.cer and old.properties.x509_thumbprint == first.properties.x509_thumbprint
    versions = {p.version for p in clients.certificates.list_properties_of_certificate_versions("rotating")}
    assert versions == {first.properties.version, second.properties.version}
    # both keys still sign (rotation overlap)
    digest = hashlib.sha256(b"x").digest()
    for cert in (first, second):
        sig = clients.crypto(cert.key_id).sign(SignatureAlgorithm.rs256, digest).signature
        x509.load_der_x509_certificate(bytes(cert.cer)).public_key().verify(
            sig, b"x", padding.PKCS1v15(), hashes.SHA256())


def test_policy_size_and_subject(sim, clients):
    cert = clients.certificates.begin_create_certificate(
        "big", app_policy(subject="CN=big, O=Contoso", size=3072)).result()
    x = x509.load_der_x509_certificate(bytes(cert.cer))
    assert x.public_key().key_size == 3072
    assert x.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Contoso"
    assert clients.certificates.get_certificate_policy("big").key_size == 3072


def test_delete_recover_purge(sim, clients):
    clients.certificates.begin_create_certificate("gone", app_policy()).result()
    deleted = clients.certificates.begin_delete_certificate("gone").result()
    assert deleted.recovery_id == f"{VAULT}/deletedcertificates/gone"
    assert deleted.scheduled_purge_date > deleted.deleted_on
    with pytest.raises(ResourceNotFoundError) as info:
        clients.certificates.get_certificate("gone")
    assert info.value.error.code == "CertificateNotFound"
    with pytest.raises(ResourceNotFoundError):
        clients.keys.get_key("gone")
    with pytest.raises(ResourceNotFoundError):
        clients.secrets.get_secret("gone")
    with pytest.raises(ResourceExistsError, match="deleted but recoverable"):
        clients.certificates.begin_create_certificate("gone", app_policy())
    assert [d.name for d in clients.certificates.list_deleted_certificates()] == ["gone"]

    clients.certificates.begin_recover_deleted_certificate("gone").result()
    assert clients.keys.get_key("gone").name == "gone"

    clients.certificates.begin_delete_certificate("gone").result()
    clients.certificates.purge_deleted_certificate("gone")
    with pytest.raises(ResourceNotFoundError) as info:
        clients.certificates.get_deleted_certificate("gone")
    assert info.value.message.startswith("(CertificateNotFound) Deleted Certificate not found: gone")
    clients.certificates.begin_create_certificate("gone", app_policy()).result()
    assert len(list(clients.certificates.list_properties_of_certificate_versions("gone"))) == 1


def test_missing_objects(sim, clients):
    with pytest.raises(ResourceNotFoundError) as info:
        clients.certificates.get_certificate("nope")
    assert info.value.error.code == "CertificateNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        clients.keys.get_key("nope")
    assert info.value.error.code == "KeyNotFound"


def test_create_answers_202_in_progress_then_completed(sim, sim_settings, sim_session):
    credential = build_credential(Settings.from_env(sim_settings), sim_session)
    token = credential.get_token("https://vault.azure.net/.default").token
    headers = {"Authorization": f"Bearer {token}"}
    body = {"policy": {"key_props": {"exportable": False, "kty": "RSA", "key_size": 2048},
                       "x509_props": {"subject": "CN=wire"}, "issuer": {"name": "Self"}}}
    resp = sim_session.post(f"{VAULT}/certificates/wire/create", params={"api-version": "7.6"}, json=body,
                            headers=headers)
    assert resp.status_code == 202
    op = resp.json()
    assert op["status"] == "inProgress" and op["issuer"] == {"name": "Self"} and op["csr"]
    assert resp.headers["Location"].startswith(f"{VAULT}/certificates/wire/pending?api-version=7.6&request_id=")
    done = sim_session.get(f"{VAULT}/certificates/wire/pending", params={"api-version": "7.6"}, headers=headers).json()
    assert done["status"] == "completed" and done["target"] == f"{VAULT}/certificates/wire"
    bundle = sim_session.get(f"{VAULT}/certificates/wire/", params={"api-version": "7.6"}, headers=headers).json()
    attrs = bundle["attributes"]
    assert attrs["created"] - attrs["nbf"] == 600 and attrs["recoveryLevel"] == "Recoverable+Purgeable"
    assert bundle["policy"]["id"] == f"{VAULT}/certificates/wire/policy"
    assert bundle["policy"]["key_props"] == {"exportable": False, "kty": "RSA", "key_size": 2048, "reuse_key": False}
    bad = sim_session.post(f"{VAULT}/keys/wire/{bundle['id'].rsplit('/', 1)[1]}/sign", params={"api-version": "7.6"},
                           json={"alg": "RS256", "value": "AAAA"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadParameter"


def test_faults_apply_to_certificates_and_keys(sim, clients):
    cert = clients.certificates.begin_create_certificate("faulty", app_policy()).result()
    sim.control.add_fault("keyvault", status=503, retryAfter=0, count=1)
    assert clients.certificates.get_certificate("faulty").id == cert.id
    sim.control.add_fault("keyvault", status=429, retryAfter=0, count=1)
    digest = hashlib.sha256(b"x").digest()
    assert clients.crypto(cert.key_id).sign(SignatureAlgorithm.rs256, digest).signature
    counters = sim.control.counters()
    assert counters["keyvault"]["faults"] == 2
    assert counters["keyvault"]["byStatus"]["503"] == 1 and counters["keyvault"]["byStatus"]["429"] == 1


def test_app_must_be_allowed_for_certificates(sim, clients):
    sim.control.patch_scenario({"vaults": [{"name": "demo", "tenant": "00000000-0000-4000-8000-0000000000aa",
                                            "allowedApps": []}]})
    with pytest.raises(HttpResponseError) as info:
        clients.certificates.begin_create_certificate("x", app_policy())
    assert info.value.status_code == 403 and "does not have certificates create permission" in info.value.message
