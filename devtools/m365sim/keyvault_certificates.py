"""Key Vault certificates and keys (``/certificates``, ``/deletedcertificates``, ``/keys``) as the real
``azure-keyvault-certificates`` CertificateClient and ``azure-keyvault-keys`` KeyClient /
CryptographyClient drive them. Used by :mod:`.keyvault` (routes, auth, counters live there).

A certificate version is three objects with one version id, as in Key Vault: the certificate
(``/certificates/{name}/{v}``: ``cer``, ``x5t``, ``policy``), its key (``/keys/{name}/{v}``: the public JWK
only, ``managed: true``; ``sign``/``verify`` run here with the private key the simulator holds) and its
secret (``/secrets/{name}/{v}``: ``managed: true``, ``kid``; PKCS#12 or PEM per ``secret_props.contentType``,
with the private key only when the policy's key is exportable). Created certificates are real X.509
certificates self-signed with the key generated for them; imported ones keep the PFX's key and
certificate. Wire shapes: the azure-sdk-for-js recordings of keyvault-certificates (create → 202
``inProgress``, pending → ``completed`` + ``target``, bundles, ``Deleted Certificate not found``) and
Learn "Monitor and manage certificate creation"; see devtools/m365sim/README.md for every source.
"""
from __future__ import annotations

import asyncio
import base64
import calendar
import datetime as dt
import hashlib
import ipaddress
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils as asym_utils
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ObjectIdentifier

from .webutil import json_response

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
_UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
_KEY_USAGE = ("digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
              "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly")
_SIGN_ALGS = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512,
              "PS256": hashes.SHA256, "PS384": hashes.SHA384, "PS512": hashes.SHA512}
STATUS_DETAILS = ("Pending certificate created. Certificate request is in progress. This may take some time "
                  "based on the issuer provider. Please check again later.")
NOT_FOUND_HINT = ("If you recently deleted this {kind} you may be able to recover it using the correct recovery "
                  "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def kv_error(status: int, code: str, message: str, inner: str | None = None, headers: dict | None = None):
    err = {"code": code, "message": message}
    if inner:
        err["innererror"] = {"code": inner}
    return json_response({"error": err}, status, headers)


class BadRequest(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------------------------- store


@dataclass
class KeyVersion:
    version: str
    private_key: rsa.RSAPrivateKey
    kty: str
    key_ops: list[str]
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int


@dataclass
class KeyRecord:
    name: str
    versions: list[KeyVersion] = field(default_factory=list)
    managed: bool = True
    deleted_date: int | None = None
    scheduled_purge: int | None = None


@dataclass
class CertVersion:
    version: str
    der: bytes
    policy: dict
    enabled: bool
    nbf: int
    exp: int
    created: int
    updated: int
    tags: dict | None

    @property
    def x5t(self) -> str:
        return b64url(hashlib.sha1(self.der).digest())


@dataclass
class CertRecord:
    name: str
    policy: dict
    versions: list[CertVersion] = field(default_factory=list)
    operation: dict | None = None
    deleted_date: int | None = None
    scheduled_purge: int | None = None


# ---------------------------------------------------------------------------------------------- policy


def default_policy(name_policy: dict | None, *, now: int) -> dict:
    """The policy Key Vault stores for a self-issued certificate: the request's fields over the defaults
    the recordings show (exportable RSA 2048, PKCS#12, serverAuth+clientAuth, digitalSignature +
    keyEncipherment, 12 months, AutoRenew at 80 %)."""
    p = name_policy or {}
    key = dict(p.get("key_props") or {})
    x509p = dict(p.get("x509_props") or {})
    out = {
        "key_props": {"exportable": key.get("exportable", True), "kty": key.get("kty") or "RSA",
                      "key_size": key.get("key_size") or 2048, "reuse_key": bool(key.get("reuse_key", False))},
        "secret_props": {"contentType": (p.get("secret_props") or {}).get("contentType") or PKCS12},
        "x509_props": {"subject": x509p.get("subject", ""), "sans": x509p.get("sans") or {},
                       "ekus": x509p.get("ekus") or ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
                       "key_usage": x509p.get("key_usage") or ["digitalSignature", "keyEncipherment"],
                       "validity_months": x509p.get("validity_months") or 12,
                       "basic_constraints": {"ca": False}},
        "lifetime_actions": p.get("lifetime_actions") or [{"trigger": {"lifetime_percentage": 80},
                                                           "action": {"action_type": "AutoRenew"}}],
        "issuer": {"name": (p.get("issuer") or {}).get("name") or "Self"},
        "attributes": {"enabled": True, "created": now, "updated": now},
    }
    if (p.get("issuer") or {}).get("cty"):
        out["issuer"]["cty"] = p["issuer"]["cty"]
    return out


def _check_policy(policy: dict) -> None:
    key = policy["key_props"]
    if key["kty"] not in ("RSA", "RSA-HSM"):
        raise BadRequest(f"m365sim: key type {key['kty']} is not simulated (RSA and RSA-HSM are).")
    if key["key_size"] not in (2048, 3072, 4096):
        raise BadRequest(f"The specified key size ({key['key_size']}) is not supported for key type "
                         f"{key['kty']}. Supported sizes: 2048, 3072, 4096.")
    if policy["secret_props"]["contentType"] not in (PKCS12, PEM):
        raise BadRequest(f"The specified content type ({policy['secret_props']['contentType']}) is not "
                         f"supported. Supported types: {PKCS12}, {PEM}.")
    x = policy["x509_props"]
    sans = x.get("sans") or {}
    if not x.get("subject") and not any(sans.get(k) for k in ("dns_names", "emails", "upns", "uris", "ipAddresses")):
        raise BadRequest("Either the subject or the subject alternative names must be specified in the policy.")
    months = x.get("validity_months")
    if not isinstance(months, int) or not 1 <= months <= 1200:
        raise BadRequest(f"The validity_months ({months}) must be an integer between 1 and 1200.")
    if policy["issuer"]["name"].lower() not in ("self",):
        raise BadRequest(f"m365sim: issuer {policy['issuer']['name']} is not simulated (only Self).")
    unknown = [u for u in x.get("key_usage") or [] if u not in _KEY_USAGE]
    if unknown:
        raise BadRequest(f"Invalid key usage: {unknown[0]}.")


def parse_subject(subject: str) -> x509.Name:
    if not subject:
        return x509.Name([])
    try:
        parts = [p.strip() for p in subject.split(",") if p.strip()]
        return x509.Name.from_rfc4514_string(",".join(reversed(parts)))
    except ValueError as exc:
        raise BadRequest(f"The subject name {subject} is not valid: {exc}.") from exc


def _add_months(ts: int, months: int) -> int:
    d = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    month = d.month - 1 + months
    year, month = d.year + month // 12, month % 12 + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return int(d.replace(year=year, month=month, day=day).timestamp())


def _key_ops(key_usage: list[str]) -> list[str]:
    ops: list[str] = []
    if "digitalSignature" in key_usage or "nonRepudiation" in key_usage:
        ops += ["sign", "verify"]
    if "keyEncipherment" in key_usage or "dataEncipherment" in key_usage:
        ops += ["wrapKey", "unwrapKey", "encrypt", "decrypt"]
    return ops or ["sign", "verify"]


def build_self_signed(policy: dict, key: rsa.RSAPrivateKey, now: int) -> tuple[x509.Certificate, bytes, int, int]:
    """(certificate, CSR DER, nbf, exp): subject, SANs, EKUs, key usage and validity from the policy;
    ``nbf`` 10 minutes before now and ``exp`` validity_months after now, as the recordings show."""
    xp = policy["x509_props"]
    name = parse_subject(xp.get("subject", ""))
    nbf, exp = now - 600, _add_months(now, xp["validity_months"])
    extensions: list[tuple[x509.ExtensionType, bool]] = []
    usage = set(xp.get("key_usage") or [])
    if usage:
        flags = {u: (u in usage) for u in _KEY_USAGE}
        extensions.append((x509.KeyUsage(
            digital_signature=flags["digitalSignature"], content_commitment=flags["nonRepudiation"],
            key_encipherment=flags["keyEncipherment"], data_encipherment=flags["dataEncipherment"],
            key_agreement=flags["keyAgreement"], key_cert_sign=flags["keyCertSign"], crl_sign=flags["cRLSign"],
            encipher_only=flags["encipherOnly"] and flags["keyAgreement"],
            decipher_only=flags["decipherOnly"] and flags["keyAgreement"]), True))
    extensions.append((x509.BasicConstraints(ca=False, path_length=None), False))
    if xp.get("ekus"):
        extensions.append((x509.ExtendedKeyUsage([ObjectIdentifier(e) for e in xp["ekus"]]), False))
    sans = xp.get("sans") or {}
    general: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.get("dns_names") or []]
    general += [x509.RFC822Name(e) for e in sans.get("emails") or []]
    general += [x509.UniformResourceIdentifier(u) for u in sans.get("uris") or []]
    general += [x509.IPAddress(ipaddress.ip_address(i)) for i in sans.get("ipAddresses") or []]
    general += [x509.OtherName(_UPN_OID, _der_utf8(u)) for u in sans.get("upns") or []]
    if general:
        extensions.append((x509.SubjectAlternativeName(general), False))

    csr = x509.CertificateSigningRequestBuilder().subject_name(name)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(dt.datetime.fromtimestamp(nbf, dt.timezone.utc))
               .not_valid_after(dt.datetime.fromtimestamp(exp, dt.timezone.utc)))
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical)
        csr = csr.add_extension(ext, critical)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = builder.add_extension(ski, False).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
    cert = builder.sign(key, hashes.SHA256())
    return cert, csr.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER), nbf, exp


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 128:
        return bytes([0x0C, len(raw)]) + raw
    length = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(length)]) + length + raw


def secret_value(content_type: str, cert: x509.Certificate, key: rsa.RSAPrivateKey | None,
                 chain: list[x509.Certificate] | None = None) -> str:
    """The backing secret's value: PKCS#12 (base64, no password) or PEM; ``key`` None for a
    non-exportable key, so the value holds the certificate(s) only (Learn: "the private key isn't part
    of the value when it's retrieved as a secret")."""
    chain = chain or []
    if content_type == PEM:
        out = ""
        if key is not None:
            out += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        for c in [cert, *chain]:
            out += c.public_bytes(serialization.Encoding.PEM).decode()
        return out
    pfx = pkcs12.serialize_key_and_certificates(None, key, cert, chain or None, serialization.NoEncryption())
    return base64.b64encode(pfx).decode()


def read_import(value: str, password: str | None, content_type: str | None):
    """(key, cert, chain, content type) of an import body; BadRequest with Key Vault's texts."""
    is_pem = content_type == PEM or (content_type is None and "-----BEGIN" in value)
    if is_pem:
        data = value.encode()
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise BadRequest("The specified X.509 PEM certificate content is in an unexpected format. Please "
                             "check if certificate is in valid PEM format.") from None
        try:
            key = serialization.load_pem_private_key(data, password.encode() if password else None)
        except (ValueError, TypeError):
            raise BadRequest("Private key is not specified in the specified X.509 PEM certificate content. "
                             "Please specify private key in the X.509 PEM certificate content.") from None
        return key, certs[0], certs[1:], PEM
    try:
        raw = base64.b64decode(value, validate=False)
        key, cert, chain = pkcs12.load_key_and_certificates(raw, password.encode() if password else None)
    except (ValueError, TypeError):
        raise BadRequest("The specified PKCS#12 X.509 certificate content can not be read. Please check if "
                         "certificate is in valid PKCS#12 format.") from None
    if cert is None or key is None:
        raise BadRequest("The specified PKCS#12 X.509 certificate content can not be read. Please check if "
                         "certificate is in valid PKCS#12 format.")
    return key, cert, list(chain), PKCS12


def import_policy(given: dict | None, key, cert: x509.Certificate, content_type: str, now: int) -> dict:
    """The policy Key Vault records for an imported certificate: the request's policy over what the
    certificate says (subject, SANs, EKUs, key usage, validity), issuer ``Unknown``, EmailContacts at 80 %."""
    g = given or {}
    gk = g.get("key_props") or {}
    x = {"subject": cert.subject.rfc4514_string(), "sans": {}, "ekus": [], "key_usage": [],
         "validity_months": max(1, round((cert.not_valid_after_utc - cert.not_valid_before_utc).days / 30.4)),
         "basic_constraints": {"ca": False}}
    for ext in cert.extensions:
        v = ext.value
        if isinstance(v, x509.ExtendedKeyUsage):
            x["ekus"] = [o.dotted_string for o in v]
        elif isinstance(v, x509.KeyUsage):
            names = {"digitalSignature": v.digital_signature, "nonRepudiation": v.content_commitment,
                     "keyEncipherment": v.key_encipherment, "dataEncipherment": v.data_encipherment,
                     "keyAgreement": v.key_agreement, "keyCertSign": v.key_cert_sign, "cRLSign": v.crl_sign}
            x["key_usage"] = [k for k, on in names.items() if on]
        elif isinstance(v, x509.SubjectAlternativeName):
            dns = v.get_values_for_type(x509.DNSName)
            if dns:
                x["sans"]["dns_names"] = dns
        elif isinstance(v, x509.BasicConstraints):
            x["basic_constraints"] = {"ca": v.ca}
    return {
        "key_props": {"exportable": gk.get("exportable", True), "kty": gk.get("kty") or "RSA",
                      "key_size": key.key_size, "reuse_key": bool(gk.get("reuse_key", False))},
        "secret_props": {"contentType": content_type},
        "x509_props": x,
        "lifetime_actions": g.get("lifetime_actions") or [{"trigger": {"lifetime_percentage": 80},
                                                           "action": {"action_type": "EmailContacts"}}],
        "issuer": {"name": "Unknown"},
        "attributes": {"enabled": True, "created": now, "updated": now},
    }


def sign_digest(key: rsa.RSAPrivateKey, alg: str, digest: bytes) -> bytes:
    hash_cls = _SIGN_ALGS[alg]
    if len(digest) != hash_cls.digest_size:
        raise BadRequest(f"Invalid digest length {len(digest)} for algorithm {alg}: {hash_cls.digest_size} "
                         "bytes expected.")
    pad = (padding.PKCS1v15() if alg.startswith("RS")
           else padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size))
    return key.sign(digest, pad, asym_utils.Prehashed(hash_cls()))


def verify_digest(key: rsa.RSAPrivateKey, alg: str, digest: bytes, signature: bytes) -> bool:
    hash_cls = _SIGN_ALGS[alg]
    pad = (padding.PKCS1v15() if alg.startswith("RS")
           else padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size))
    try:
        key.public_key().verify(signature, digest, pad, asym_utils.Prehashed(hash_cls()))
        return True
    except (InvalidSignature, ValueError):
        return False


def public_jwk(kid: str, kv: KeyVersion) -> dict:
    nums = kv.private_key.public_key().public_numbers()
    n = nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")
    e = nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big")
    return {"kid": kid, "kty": kv.kty, "key_ops": list(kv.key_ops), "n": b64url(n), "e": b64url(e)}


async def in_thread(fn, *args):
    """Key generation and signing off the event loop (RSA 4096 takes a while)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def now_s() -> int:
    return int(time.time())


def new_version_id() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------- handlers


class CertificateOps:
    """The handlers; ``ctx`` is keyvault._Ctx (``secrets``, ``certificates``, ``keys``, ``vault``, ``base``)."""

    def __init__(self, secret_record, secret_version):
        self.secret_record, self.secret_version = secret_record, secret_version  # keyvault's dataclasses

    # ---------------------------------------------------------------- certificates

    async def create(self, request, ctx, name):
        body = await _json(request)
        if body is None:
            return kv_error(400, "BadParameter", "The request body is not valid JSON.")
        rec = ctx.certificates.get(name.lower())
        conflict = self._conflict(ctx, name, rec)
        if conflict is not None:
            return conflict
        if rec is None and not body.get("policy"):
            return kv_error(400, "BadParameter", "Property 'policy' is required.")
        now = now_s()
        policy = rec.policy if rec is not None and not body.get("policy") else default_policy(body["policy"], now=now)
        try:
            _check_policy(policy)
        except BadRequest as exc:
            return kv_error(400, "BadParameter", exc.message)
        previous = ctx.keys.get(name.lower())
        if policy["key_props"]["reuse_key"] and previous is not None and previous.versions:
            key = previous.versions[-1].private_key
        else:
            key = await in_thread(lambda: rsa.generate_private_key(65537, policy["key_props"]["key_size"]))
        try:
            cert, csr, nbf, exp = await in_thread(build_self_signed, policy, key, now)
        except (BadRequest, ValueError) as exc:
            return kv_error(400, "BadParameter", getattr(exc, "message", str(exc)))
        attrs = body.get("attributes") or {}
        rec = self._store(ctx, name, rec, policy, key, cert, [], nbf, exp, now, attrs.get("enabled", True),
                          body.get("tags"))
        request_id = new_version_id()
        op = {"id": f"{ctx.base}/certificates/{rec.name}/pending", "issuer": {"name": policy["issuer"]["name"]},
              "csr": base64.b64encode(csr).decode(), "cancellation_requested": False, "status": "inProgress",
              "status_details": STATUS_DETAILS, "request_id": request_id}
        rec.operation = dict(op, status="completed", target=f"{ctx.base}/certificates/{rec.name}")
        del rec.operation["status_details"]
        location = f"{ctx.base}/certificates/{rec.name}/pending?api-version={ctx.api}&request_id={request_id}"
        return json_response(op, 202, {"Location": location, "Retry-After": "10"})

    async def import_(self, request, ctx, name):
        body = await _json(request)
        if body is None or not isinstance(body.get("value"), str):
            return kv_error(400, "BadParameter", "Property 'value' is required and must be a string.")
        rec = ctx.certificates.get(name.lower())
        conflict = self._conflict(ctx, name, rec)
        if conflict is not None:
            return conflict
        given = body.get("policy") or {}
        try:
            key, cert, chain, ctype = read_import(body["value"], body.get("pwd"),
                                                  (given.get("secret_props") or {}).get("contentType"))
        except BadRequest as exc:
            return kv_error(400, "BadParameter", exc.message)
        if not isinstance(key, rsa.RSAPrivateKey):
            return kv_error(400, "BadParameter", "m365sim: only RSA certificates are simulated.")
        now = now_s()
        policy = import_policy(given, key, cert, ctype, now)
        attrs = body.get("attributes") or {}
        rec = self._store(ctx, name, rec, policy, key, cert, chain, int(cert.not_valid_before_utc.timestamp()),
                          int(cert.not_valid_after_utc.timestamp()), now, attrs.get("enabled", True), body.get("tags"))
        return json_response(self.bundle(ctx, rec, rec.versions[-1]))

    def _conflict(self, ctx, name, rec):
        if rec is not None and rec.deleted_date is not None:
            return kv_error(409, "Conflict", f"Certificate {rec.name} is currently in a deleted but recoverable "
                            "state, and its name cannot be reused; in this state, the certificate can only be "
                            "recovered or purged.", inner="ObjectIsDeletedButRecoverable")
        secret = ctx.secrets.get(name.lower())
        if rec is None and secret is not None and not secret.managed:
            return kv_error(409, "Conflict", f"m365sim: a secret named {secret.name} exists; Key Vault keeps a "
                            "certificate's secret under the certificate's name.")
        return None

    def _store(self, ctx, name, rec, policy, key, cert, chain, nbf, exp, now, enabled, tags) -> CertRecord:
        version = new_version_id()
        if rec is None:
            rec = ctx.certificates[name.lower()] = CertRecord(name, policy)
        rec.policy = policy
        der = cert.public_bytes(serialization.Encoding.DER)
        rec.versions.append(CertVersion(version, der, policy, enabled, nbf, exp, now, now, tags))
        keys = ctx.keys.setdefault(name.lower(), KeyRecord(rec.name))
        keys.versions.append(KeyVersion(version, key, policy["key_props"]["kty"],
                                        _key_ops(policy["x509_props"].get("key_usage") or []),
                                        enabled, nbf, exp, now, now))
        exportable = bool(policy["key_props"]["exportable"])
        ctype = policy["secret_props"]["contentType"]
        value = secret_value(ctype, cert, key if exportable else None, chain)
        srec = ctx.secrets.get(name.lower())
        if srec is None:
            srec = ctx.secrets[name.lower()] = self.secret_record(rec.name, managed=True)
        srec.versions.append(self.secret_version(version, value, ctype, None, enabled, nbf, exp, now, now,
                                                    kid=f"{ctx.base}/keys/{rec.name}/{version}",
                                                    private_key=exportable))
        return rec

    async def get(self, request, ctx, name, version=None):
        rec = _live(ctx.certificates, name)
        if rec is None:
            return cert_not_found(name)
        ver = _version(rec, version)
        if ver is None:
            return cert_not_found(f"{name}/{version}")
        return json_response(self.bundle(ctx, rec, ver))

    async def update(self, request, ctx, name, version=None):
        rec = _live(ctx.certificates, name)
        ver = _version(rec, version) if rec else None
        if ver is None:
            return cert_not_found(name)
        body = await _json(request) or {}
        attrs = body.get("attributes") or {}
        now = now_s()
        if "enabled" in attrs:
            ver.enabled = bool(attrs["enabled"])
            for store in (ctx.keys, ctx.secrets):
                other = store.get(name.lower())
                for v in other.versions if other else []:
                    if v.version == ver.version:
                        v.enabled, v.updated = ver.enabled, now
        if "tags" in body:
            ver.tags = body["tags"]
        ver.updated = now
        return json_response(self.bundle(ctx, rec, ver))

    async def get_operation(self, request, ctx, name):
        rec = _live(ctx.certificates, name)
        wanted = request.query.get("request_id")
        if rec is None or rec.operation is None or (wanted and wanted != rec.operation["request_id"]):
            return kv_error(404, "PendingCertificateNotFound", f"Pending certificate not found: {name}")
        return json_response(rec.operation)

    async def get_policy(self, request, ctx, name):
        rec = _live(ctx.certificates, name)
        if rec is None:
            return cert_not_found(name)
        return json_response(self.policy(ctx, rec, rec.policy))

    async def list(self, request, ctx):
        items = [self.item(ctx, r, r.versions[-1], versioned=False)
                 for r in sorted(ctx.certificates.values(), key=lambda r: r.name.lower()) if r.deleted_date is None]
        return ctx.page(request, items, "/certificates")

    async def list_versions(self, request, ctx, name):
        rec = _live(ctx.certificates, name)
        if rec is None:
            return cert_not_found(name)
        return ctx.page(request, [self.item(ctx, rec, v, versioned=True) for v in rec.versions],
                        f"/certificates/{rec.name}/versions")

    async def delete(self, request, ctx, name):
        rec = _live(ctx.certificates, name)
        if rec is None:
            return cert_not_found(name)
        when = now_s()
        purge = when + ctx.vault["softDeleteRetentionDays"] * 86400
        for obj in (rec, ctx.keys.get(name.lower()), ctx.secrets.get(name.lower())):
            if obj is not None:
                obj.deleted_date, obj.scheduled_purge = when, purge
        return json_response(self.deleted_bundle(ctx, rec))

    async def list_deleted(self, request, ctx):
        items = [dict(self.item(ctx, r, r.versions[-1], versioned=False), **self.deletion(ctx, r))
                 for r in sorted(ctx.certificates.values(), key=lambda r: r.name.lower()) if r.deleted_date]
        return ctx.page(request, items, "/deletedcertificates")

    async def get_deleted(self, request, ctx, name):
        rec = _deleted(ctx.certificates, name)
        if rec is None:
            return kv_error(404, "CertificateNotFound", f"Deleted Certificate not found: {name}")
        return json_response(self.deleted_bundle(ctx, rec))

    async def purge(self, request, ctx, name):
        rec = _deleted(ctx.certificates, name)
        if rec is None:
            return kv_error(404, "CertificateNotFound", f"Deleted Certificate not found: {name}")
        for store in (ctx.certificates, ctx.keys, ctx.secrets):
            store.pop(name.lower(), None)
        return web.Response(status=204)

    async def recover(self, request, ctx, name):
        rec = _deleted(ctx.certificates, name)
        if rec is None:
            return kv_error(404, "CertificateNotFound", f"Deleted Certificate not found: {name}")
        for obj in (rec, ctx.keys.get(name.lower()), ctx.secrets.get(name.lower())):
            if obj is not None:
                obj.deleted_date = obj.scheduled_purge = None
        return json_response(self.bundle(ctx, rec, rec.versions[-1]))

    # ---------------------------------------------------------------- keys

    async def get_key(self, request, ctx, name, version=None):
        rec = _live(ctx.keys, name)
        ver = _version(rec, version) if rec else None
        if ver is None:
            return key_not_found(name if rec is None else f"{name}/{version}")
        return json_response(self.key_bundle(ctx, rec, ver))

    async def list_keys(self, request, ctx):
        items = [self.key_item(ctx, r, r.versions[-1], versioned=False)
                 for r in sorted(ctx.keys.values(), key=lambda r: r.name.lower()) if r.deleted_date is None]
        return ctx.page(request, items, "/keys")

    async def list_key_versions(self, request, ctx, name):
        rec = _live(ctx.keys, name)
        if rec is None:
            return key_not_found(name)
        return ctx.page(request, [self.key_item(ctx, rec, v, versioned=True) for v in rec.versions],
                        f"/keys/{rec.name}/versions")

    async def sign(self, request, ctx, name, version=None):
        return await self._key_operation(request, ctx, name, version, "sign")

    async def verify(self, request, ctx, name, version=None):
        return await self._key_operation(request, ctx, name, version, "verify")

    async def _key_operation(self, request, ctx, name, version, operation):
        rec = _live(ctx.keys, name)
        ver = _version(rec, version or None) if rec else None
        if ver is None:
            return key_not_found(name if rec is None else f"{name}/{version}")
        if not ver.enabled:
            return kv_error(403, "Forbidden", f"Operation {operation} is not allowed on a disabled key.",
                            inner="KeyDisabled")
        if operation not in ver.key_ops:
            return kv_error(403, "Forbidden", f"Operation {operation} is not permitted on this key.",
                            inner="KeyOperationForbidden")
        body = await _json(request) or {}
        alg = body.get("alg")
        if alg not in _SIGN_ALGS:
            return kv_error(400, "BadParameter", f"Invalid algorithm: {alg}. Supported for RSA keys: "
                            + ", ".join(_SIGN_ALGS) + ".")
        kid = f"{ctx.base}/keys/{rec.name}/{ver.version}"
        try:
            if operation == "sign":
                signature = await in_thread(sign_digest, ver.private_key, alg, b64url_decode(body.get("value") or ""))
                return json_response({"kid": kid, "value": b64url(signature)})
            ok = verify_digest(ver.private_key, alg, b64url_decode(body.get("digest") or ""),
                               b64url_decode(body.get("value") or ""))
        except BadRequest as exc:
            return kv_error(400, "BadParameter", exc.message)
        except ValueError:
            return kv_error(400, "BadParameter", "The value is not valid base64url.")
        return json_response({"value": ok})

    # ---------------------------------------------------------------- shapes

    @staticmethod
    def _attributes(ctx, v) -> dict:
        out = {"enabled": v.enabled}
        if v.nbf is not None:
            out["nbf"] = v.nbf
        if v.exp is not None:
            out["exp"] = v.exp
        out.update(created=v.created, updated=v.updated, recoveryLevel="Recoverable+Purgeable",
                   recoverableDays=ctx.vault["softDeleteRetentionDays"])
        return out

    def policy(self, ctx, rec: CertRecord, policy: dict) -> dict:
        return {"id": f"{ctx.base}/certificates/{rec.name}/policy", **policy}

    def item(self, ctx, rec: CertRecord, v: CertVersion, *, versioned: bool) -> dict:
        out = {"id": f"{ctx.base}/certificates/{rec.name}" + (f"/{v.version}" if versioned else ""),
               "x5t": v.x5t, "attributes": self._attributes(ctx, v)}
        if v.tags:
            out["tags"] = v.tags
        return out

    def bundle(self, ctx, rec: CertRecord, v: CertVersion) -> dict:
        out = {"id": f"{ctx.base}/certificates/{rec.name}/{v.version}",
               "kid": f"{ctx.base}/keys/{rec.name}/{v.version}",
               "sid": f"{ctx.base}/secrets/{rec.name}/{v.version}",
               "x5t": v.x5t, "cer": base64.b64encode(v.der).decode(),
               "attributes": self._attributes(ctx, v),
               "policy": self.policy(ctx, rec, rec.policy)}
        if v.tags:
            out["tags"] = v.tags
        if rec.operation is not None:
            out["pending"] = {"id": f"{ctx.base}/certificates/{rec.name}/pending"}
        return out

    def deletion(self, ctx, rec) -> dict:
        return {"recoveryId": f"{ctx.base}/deletedcertificates/{rec.name}", "deletedDate": rec.deleted_date,
                "scheduledPurgeDate": rec.scheduled_purge}

    def deleted_bundle(self, ctx, rec: CertRecord) -> dict:
        return {**self.deletion(ctx, rec), **self.bundle(ctx, rec, rec.versions[-1])}

    def key_bundle(self, ctx, rec: KeyRecord, v: KeyVersion) -> dict:
        out = {"key": public_jwk(f"{ctx.base}/keys/{rec.name}/{v.version}", v),
               "attributes": self._attributes(ctx, v)}
        if rec.managed:
            out["managed"] = True
        return out

    def key_item(self, ctx, rec: KeyRecord, v: KeyVersion, *, versioned: bool) -> dict:
        out = {"kid": f"{ctx.base}/keys/{rec.name}" + (f"/{v.version}" if versioned else ""),
               "attributes": self._attributes(ctx, v)}
        if rec.managed:
            out["managed"] = True
        return out


def cert_not_found(name: str):
    return kv_error(404, "CertificateNotFound", f"A certificate with (name/id) {name} was not found in this key "
                    "vault. " + NOT_FOUND_HINT.format(kind="certificate"))


def key_not_found(name: str):
    return kv_error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault. "
                    + NOT_FOUND_HINT.format(kind="key"))


def _live(store: dict, name: str):
    rec = store.get(name.lower())
    return rec if rec is not None and rec.deleted_date is None else None


def _deleted(store: dict, name: str):
    rec = store.get(name.lower())
    return rec if rec is not None and rec.deleted_date is not None else None


def _version(rec, version: str | None):
    if rec is None or not rec.versions:
        return None
    if not version:
        return rec.versions[-1]
    return next((v for v in rec.versions if v.version == version.lower()), None)


async def _json(request) -> dict | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None

