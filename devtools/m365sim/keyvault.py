"""Azure Key Vault secrets, certificates and keys REST (``https://{vault}.vault.azure.net``), with challenge
authentication, versions and soft delete, as the real ``azure-keyvault-secrets`` SecretClient,
``azure-keyvault-certificates`` CertificateClient and ``azure-keyvault-keys`` KeyClient/CryptographyClient
drive it (certificates and keys: :mod:`.keyvault_certificates`).

Every request that reaches an operation is counted twice: under the endpoint ``keyvault`` (faults
match it) and under ``keyvault.{secrets|certificates|keys}.{operation}`` (``OPERATIONS``), so a test can
prove which operations ran; a secret value that carries a private key (the secret of an exportable
certificate) is also counted as ``keyvault.secrets.getWithPrivateKey``.

Wire shapes: 401 challenge ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/
{tenant}", resource="https://vault.azure.net"`` with ``{"error":{"code":"Unauthorized","message":
"AKV10000: Request is missing a Bearer or PoP token."}}``; ``SecretNotFound`` (404), ``Conflict`` /
``ObjectIsDeletedButRecoverable`` (409), ``BadParameter`` (400), ``Forbidden`` (403); bundles with
``id``, ``attributes`` (epoch seconds, ``recoveryLevel``, ``recoverableDays``), ``recoveryId``,
``deletedDate``, ``scheduledPurgeDate``.
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web

from .keyvault_certificates import CertificateOps
from .tokens import RESOURCE_APP_IDS, TokenError
from .webutil import Routes, bearer, json_response

API_VERSIONS = frozenset({"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01",
                          "2026-04-01"})
LATEST_API_VERSION = "2026-04-01"
AUDIENCES = ("https://vault.azure.net", RESOURCE_APP_IDS["https://vault.azure.net"])
_NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")
_DEFAULT_PAGE = 25


@dataclass
class SecretVersion:
    version: str
    value: str
    content_type: str | None
    tags: dict | None
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int
    kid: str | None = None       # the key of the certificate this secret belongs to
    private_key: bool = False    # the value carries a private key (exportable certificate)


@dataclass
class SecretRecord:
    name: str
    versions: list[SecretVersion] = field(default_factory=list)
    deleted_date: int | None = None
    scheduled_purge: int | None = None
    managed: bool = False        # the secret of a certificate (Key Vault's ``managed: true``)


class VaultStore:
    """Secrets, certificates and keys of every vault (by lower-case vault name, then by lower-case
    object name)."""

    def __init__(self, vaults: list[dict]):
        self.data: dict[str, dict[str, SecretRecord]] = {}
        self.certificates: dict[str, dict] = {}
        self.keys: dict[str, dict] = {}
        for v in vaults:
            store = self.data.setdefault(v["name"].lower(), {})
            for s in v.get("secrets", []):
                rec = store.setdefault(s["name"].lower(), SecretRecord(s["name"]))
                rec.versions.append(_new_version(s["value"], s.get("contentType"), None, {}))

    def summary(self, vault: str) -> dict:
        return {rec.name: {"versions": len(rec.versions), "deleted": rec.deleted_date is not None}
                for rec in self.data.get(vault.lower(), {}).values()}


def _new_version(value: str, content_type: str | None, tags: dict | None, attrs: dict) -> SecretVersion:
    now = int(time.time())
    return SecretVersion(uuid.uuid4().hex, value, content_type, tags, attrs.get("enabled", True),
                         attrs.get("nbf"), attrs.get("exp"), now, now)


# (kind, operation) of each handler: counter ``keyvault.{kind}.{operation}``; the permission named in a
# 403 ForbiddenByPolicy is Key Vault's access-policy permission of that operation.
_PERMISSION = {"listVersions": "list", "listDeleted": "list", "getDeleted": "get", "getOperation": "get",
               "getPolicy": "get"}


def kv_error(status: int, code: str, message: str, inner: str | None = None, headers: dict | None = None):
    err = {"code": code, "message": message}
    if inner:
        err["innererror"] = {"code": inner}
    return json_response({"error": err}, status, headers)


class KeyVaultService:
    def __init__(self, state):
        self.state = state
        r = Routes()
        r.add("PUT", r"/secrets/(?P<name>[^/]+)/?", self.set_secret)
        r.add("GET", r"/secrets/?", self.list_secrets)
        r.add("GET", r"/secrets/(?P<name>[^/]+)/versions/?", self.list_versions)
        r.add("GET", r"/secrets/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?/?", self.get_secret)
        r.add("PATCH", r"/secrets/(?P<name>[^/]+)/(?P<version>[^/]*)/?", self.update_secret)
        r.add("DELETE", r"/secrets/(?P<name>[^/]+)/?", self.delete_secret)
        r.add("GET", r"/deletedsecrets/?", self.list_deleted)
        r.add("GET", r"/deletedsecrets/(?P<name>[^/]+)/?", self.get_deleted)
        r.add("DELETE", r"/deletedsecrets/(?P<name>[^/]+)/?", self.purge)
        r.add("POST", r"/deletedsecrets/(?P<name>[^/]+)/recover/?", self.recover)
        c = self.certs = CertificateOps(SecretRecord, SecretVersion)
        r.add("POST", r"/certificates/(?P<name>[^/]+)/create/?", c.create)
        r.add("POST", r"/certificates/(?P<name>[^/]+)/import/?", c.import_)
        r.add("GET", r"/certificates/?", c.list)
        r.add("GET", r"/certificates/(?P<name>[^/]+)/versions/?", c.list_versions)
        r.add("GET", r"/certificates/(?P<name>[^/]+)/pending/?", c.get_operation)
        r.add("GET", r"/certificates/(?P<name>[^/]+)/policy/?", c.get_policy)
        r.add("GET", r"/certificates/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?/?", c.get)
        r.add("PATCH", r"/certificates/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?/?", c.update)
        r.add("DELETE", r"/certificates/(?P<name>[^/]+)/?", c.delete)
        r.add("GET", r"/deletedcertificates/?", c.list_deleted)
        r.add("GET", r"/deletedcertificates/(?P<name>[^/]+)/?", c.get_deleted)
        r.add("DELETE", r"/deletedcertificates/(?P<name>[^/]+)/?", c.purge)
        r.add("POST", r"/deletedcertificates/(?P<name>[^/]+)/recover/?", c.recover)
        r.add("GET", r"/keys/?", c.list_keys)
        r.add("GET", r"/keys/(?P<name>[^/]+)/versions/?", c.list_key_versions)
        r.add("POST", r"/keys/(?P<name>[^/]+)/(?P<version>[^/]*)/sign/?", c.sign)
        r.add("POST", r"/keys/(?P<name>[^/]+)/(?P<version>[^/]*)/verify/?", c.verify)
        r.add("GET", r"/keys/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?/?", c.get_key)
        self.routes = r
        self.operations = {
            self.set_secret: ("secrets", "set"), self.list_secrets: ("secrets", "list"),
            self.list_versions: ("secrets", "listVersions"), self.get_secret: ("secrets", "get"),
            self.update_secret: ("secrets", "update"), self.delete_secret: ("secrets", "delete"),
            self.list_deleted: ("secrets", "listDeleted"), self.get_deleted: ("secrets", "getDeleted"),
            self.purge: ("secrets", "purge"), self.recover: ("secrets", "recover"),
            c.create: ("certificates", "create"), c.import_: ("certificates", "import"),
            c.list: ("certificates", "list"), c.list_versions: ("certificates", "listVersions"),
            c.get_operation: ("certificates", "getOperation"), c.get_policy: ("certificates", "getPolicy"),
            c.get: ("certificates", "get"), c.update: ("certificates", "update"),
            c.delete: ("certificates", "delete"), c.list_deleted: ("certificates", "listDeleted"),
            c.get_deleted: ("certificates", "getDeleted"), c.purge: ("certificates", "purge"),
            c.recover: ("certificates", "recover"),
            c.list_keys: ("keys", "list"), c.list_key_versions: ("keys", "listVersions"),
            c.sign: ("keys", "sign"), c.verify: ("keys", "verify"), c.get_key: ("keys", "get"),
        }

    def endpoint(self, request: web.Request) -> str:
        return "keyvault"

    def fault_response(self, request: web.Request, status: int, retry_after: int | None) -> web.Response:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if status == 429:
            return kv_error(429, "Throttled", "Request was not processed because too many requests were "
                            "received. Reason: A generic throttling reason.", headers=headers)
        return kv_error(status, "ServiceUnavailable", "The service is temporarily unavailable.", headers=headers)

    # ------------------------------------------------------------------ pipeline

    async def handle(self, request: web.Request) -> web.Response:
        host = request.host.split(":")[0].lower()
        vault_name = host.split(".", 1)[0]
        vault = self.state.directory.vault(vault_name)
        base_headers = {"x-ms-keyvault-region": "local", "x-ms-keyvault-service-version": "1.9.0.0",
                        "x-ms-request-id": str(uuid.uuid4())}
        if "x-ms-client-request-id" in request.headers:
            base_headers["x-ms-client-request-id"] = request.headers["x-ms-client-request-id"]
        resp = await self._handle(request, vault, host)
        resp.headers.update(base_headers)
        return resp

    async def _handle(self, request: web.Request, vault: dict | None, host: str) -> web.Response:
        if vault is None:
            return kv_error(404, "VaultNotFound", f"The vault {host} does not exist.")
        api = request.query.get("api-version")
        if not api:
            return kv_error(400, "BadParameter", "The api-version query parameter is missing.")
        if api not in API_VERSIONS:
            return kv_error(400, "BadParameter", f"The specified version ({api}) is not recognized. Consider "
                            f"using the latest supported version ({LATEST_API_VERSION}).")
        challenge = {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/'
                                         f'{vault["tenant"]}", resource="https://vault.azure.net"'}
        token = bearer(request)
        if token is None:
            return kv_error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.",
                            headers=challenge)
        try:
            claims = self.state.tokens.verify(token, AUDIENCES)
        except TokenError as exc:
            message = {
                "expired": "AKV10017: The token has expired.",
                "audience": f"AKV10022: Invalid audience. Expected https://vault.azure.net, found: {exc.detail}.",
            }.get(exc.reason, "AKV10032: Invalid token: the signature or format is not valid.")
            return kv_error(401, "Unauthorized", message, headers=challenge)
        if claims.get("tid", "").lower() != vault["tenant"].lower():
            return kv_error(401, "Unauthorized", f"AKV10032: Invalid issuer. Expected one of "
                            f"https://sts.windows.net/{vault['tenant']}/, found {claims.get('iss')}.",
                            headers=challenge)
        handler, groups, known = self.routes.match(request.method, request.path)
        if handler is None:
            status = 405 if known else 404
            return kv_error(status, "BadParameter" if known else "NotFound",
                            f"The request {request.method} {request.path} is not supported.")
        kind, operation = self.operations[handler]
        counter = f"keyvault.{kind}.{operation}"
        self.state.counters.hit(counter, name=groups.get("name"))
        resp = await self._operate(request, handler, groups, vault, host, api, claims, kind, operation)
        self.state.counters.status(counter, resp.status)
        return resp

    async def _operate(self, request, handler, groups, vault, host, api, claims, kind, operation):
        allowed = {a.lower() for a in vault["allowedApps"]}
        if claims.get("appid", "").lower() not in allowed:
            permission = _PERMISSION.get(operation, operation)
            return kv_error(403, "Forbidden", f"The user, group or application 'appid={claims.get('appid')};"
                            f"oid={claims.get('oid')};iss={claims.get('iss')}' does not have {kind} "
                            f"{permission} permission on key vault '{vault['name']};location=local'. For help "
                            "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                            inner="ForbiddenByPolicy")
        name = groups.get("name")
        if name is not None and not _NAME.fullmatch(name):
            return kv_error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
        key = vault["name"].lower()
        store = self.state.vaults
        ctx = _Ctx(store.data.setdefault(key, {}), vault, host, api, store.certificates.setdefault(key, {}),
                   store.keys.setdefault(key, {}))
        return await handler(request, ctx, **groups)

    # ------------------------------------------------------------------ operations

    async def set_secret(self, request, ctx, name):
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return kv_error(400, "BadParameter", "Property 'value' is required and must be a string.")
        rec = ctx.secrets.get(name.lower())
        if rec is not None and rec.managed:
            return _managed_refusal(rec, "set")
        if rec is not None and rec.deleted_date is not None:
            return kv_error(409, "Conflict", f"Secret {rec.name} is currently in a deleted but recoverable "
                            "state, and its name cannot be reused; in this state, the secret can only be "
                            "recovered or purged.", inner="ObjectIsDeletedButRecoverable")
        if rec is None:
            rec = ctx.secrets[name.lower()] = SecretRecord(name)
        version = _new_version(body["value"], body.get("contentType"), body.get("tags"),
                               body.get("attributes") or {})
        rec.versions.append(version)
        return json_response(ctx.bundle(rec, version, with_value=True))

    async def get_secret(self, request, ctx, name, version=None):
        rec = ctx.live(name)
        if rec is None:
            return ctx.not_found(name)
        ver = ctx.find_version(rec, version)
        if ver is None:
            return kv_error(404, "SecretNotFound", f"A secret with (name/id) {name}/{version} was not found in "
                            "this key vault. If you recently deleted this secret you may be able to recover it "
                            "using the correct recovery command. For help resolving this issue, please see "
                            "https://go.microsoft.com/fwlink/?linkid=2125182")
        if not ver.enabled:
            return kv_error(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                            inner="SecretDisabled")
        if ver.private_key:
            self.state.counters.hit("keyvault.secrets.getWithPrivateKey")
            self.state.counters.status("keyvault.secrets.getWithPrivateKey", 200)
        return json_response(ctx.bundle(rec, ver, with_value=True))

    async def update_secret(self, request, ctx, name, version):
        rec = ctx.live(name)
        ver = ctx.find_version(rec, version or None) if rec else None
        if ver is None:
            return ctx.not_found(name)
        body = await request.json()
        attrs = body.get("attributes") or {}
        for key in ("enabled", "nbf", "exp"):
            if key in attrs:
                setattr(ver, key, attrs[key])
        if "contentType" in body:
            ver.content_type = body["contentType"]
        if "tags" in body:
            ver.tags = body["tags"]
        ver.updated = int(time.time())
        return json_response(ctx.bundle(rec, ver, with_value=False))

    async def list_secrets(self, request, ctx):
        items = [ctx.item(rec, rec.versions[-1], versioned=False)
                 for rec in sorted(ctx.secrets.values(), key=lambda r: r.name.lower()) if rec.deleted_date is None]
        return ctx.page(request, items, "/secrets")

    async def list_versions(self, request, ctx, name):
        rec = ctx.live(name)
        if rec is None:
            return ctx.not_found(name)
        items = [ctx.item(rec, v, versioned=True) for v in rec.versions]
        return ctx.page(request, items, f"/secrets/{rec.name}/versions")

    async def delete_secret(self, request, ctx, name):
        rec = ctx.live(name)
        if rec is None:
            return ctx.not_found(name)
        if rec.managed:
            return _managed_refusal(rec, "delete")
        rec.deleted_date = int(time.time())
        rec.scheduled_purge = rec.deleted_date + ctx.vault["softDeleteRetentionDays"] * 86400
        return json_response(ctx.deleted_bundle(rec))

    async def list_deleted(self, request, ctx):
        items = [dict(ctx.item(rec, rec.versions[-1], versioned=False), **ctx.deletion(rec))
                 for rec in sorted(ctx.secrets.values(), key=lambda r: r.name.lower()) if rec.deleted_date]
        return ctx.page(request, items, "/deletedsecrets")

    async def get_deleted(self, request, ctx, name):
        rec = ctx.deleted(name)
        if rec is None:
            return kv_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return json_response(ctx.deleted_bundle(rec))

    async def purge(self, request, ctx, name):
        rec = ctx.deleted(name)
        if rec is None:
            return kv_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        del ctx.secrets[name.lower()]
        return web.Response(status=204)

    async def recover(self, request, ctx, name):
        rec = ctx.deleted(name)
        if rec is None:
            return kv_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        rec.deleted_date = rec.scheduled_purge = None
        return json_response(ctx.bundle(rec, rec.versions[-1], with_value=False))


def _managed_refusal(rec: SecretRecord, operation: str) -> web.Response:
    # The simulator's own text: a certificate's secret changes only through the certificate.
    return kv_error(403, "Forbidden", f"m365sim: operation {operation} is not allowed on the secret {rec.name}: it "
                    f"belongs to the certificate {rec.name} (managed); use the certificate operations.")


@dataclass
class _Ctx:
    secrets: dict[str, SecretRecord]
    vault: dict
    host: str
    api: str
    certificates: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"https://{self.host}"

    def live(self, name: str) -> SecretRecord | None:
        rec = self.secrets.get(name.lower())
        return rec if rec is not None and rec.deleted_date is None else None

    def deleted(self, name: str) -> SecretRecord | None:
        rec = self.secrets.get(name.lower())
        return rec if rec is not None and rec.deleted_date is not None else None

    @staticmethod
    def find_version(rec: SecretRecord, version: str | None) -> SecretVersion | None:
        if not version:
            return rec.versions[-1]
        return next((v for v in rec.versions if v.version == version.lower()), None)

    def not_found(self, name: str) -> web.Response:
        return kv_error(404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault. "
                        "If you recently deleted this secret you may be able to recover it using the correct "
                        "recovery command. For help resolving this issue, please see "
                        "https://go.microsoft.com/fwlink/?linkid=2125182")

    def attributes(self, v: SecretVersion) -> dict:
        attrs = {"enabled": v.enabled, "created": v.created, "updated": v.updated,
                 "recoveryLevel": "Recoverable+Purgeable",
                 "recoverableDays": self.vault["softDeleteRetentionDays"]}
        if v.nbf is not None:
            attrs["nbf"] = v.nbf
        if v.exp is not None:
            attrs["exp"] = v.exp
        return attrs

    def item(self, rec: SecretRecord, v: SecretVersion, *, versioned: bool) -> dict:
        item = {"id": f"{self.base}/secrets/{rec.name}" + (f"/{v.version}" if versioned else ""),
                "attributes": self.attributes(v)}
        if v.content_type:
            item["contentType"] = v.content_type
        if v.tags:
            item["tags"] = v.tags
        if rec.managed:
            item["managed"] = True
        return item

    def bundle(self, rec: SecretRecord, v: SecretVersion, *, with_value: bool) -> dict:
        out = self.item(rec, v, versioned=True)
        if v.kid:
            out["kid"] = v.kid
        if with_value:
            out = {"value": v.value, **out}
        return out

    def deletion(self, rec: SecretRecord) -> dict:
        return {"recoveryId": f"{self.base}/deletedsecrets/{rec.name}", "deletedDate": rec.deleted_date,
                "scheduledPurgeDate": rec.scheduled_purge}

    def deleted_bundle(self, rec: SecretRecord) -> dict:
        return {**self.deletion(rec), **self.bundle(rec, rec.versions[-1], with_value=False)}

    def page(self, request: web.Request, items: list[dict], path: str) -> web.Response:
        try:
            size = max(1, min(int(request.query.get("maxresults", _DEFAULT_PAGE)), _DEFAULT_PAGE))
            start = int(request.query.get("$skiptoken", "0"))
        except ValueError:
            return kv_error(400, "BadParameter", "maxresults and $skiptoken must be integers.")
        chunk = items[start:start + size]
        next_link = None
        if start + size < len(items):
            next_link = (f"{self.base}{path}?api-version={self.api}&$skiptoken={start + size}"
                         f"&maxresults={size}")
        return json_response({"value": chunk, "nextLink": next_link})
