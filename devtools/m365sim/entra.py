"""Entra ID on ``login.microsoftonline.com``: OIDC discovery, JWKS, user realm, the v2.0/v1 token
endpoint (password, client_credentials, refresh_token grants) and SharePoint's legacy security token
service ``extSTS.srf`` (WS-Trust 2005 Issue → compact ``t=`` token or ``S:Fault``).
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from . import aadsts
from .scenario import ROLE_TEMPLATE_IDS, load_certificate, policy_display_name, stable_id
from .signin import LEGACY, MODERN, evaluate
from .tokens import RESOURCE_APP_IDS, b64url, b64url_decode
from .webutil import Routes, dumps, json_response, text_response, utc_iso

LOGIN = "https://login.microsoftonline.com"
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_MULTI = frozenset({"common", "organizations"})
SPO_APP_ID = RESOURCE_APP_IDS["sharepoint"]


JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRAPH = "https://graph.microsoft.com"
#: Clock skew the simulator allows on a client assertion's nbf/exp (seconds).
ASSERTION_SKEW_SECONDS = 300
_DOCS_GRAPH_KEYS = ("Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys "
                    "for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/"
                    "deployments to determine the corresponding service endpoint and https://docs.microsoft.com/"
                    "en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, "
                    "such as 'https://graph.microsoft.com/beta/applications/{client_id}'")
_CERT_DOCS = "Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."

# App-registration (client assertion) errors, as real responses carry them (sources: README "App
# registrations"). aadsts.py holds the user sign-in catalog; these are added to it here.
aadsts.CATALOG.setdefault(700027, aadsts.Aadsts("invalid_client", "{detail}", status=401))
aadsts.CATALOG.setdefault(700024, aadsts.Aadsts(
    "invalid_client", "Client assertion is not within its valid time range. Current time: {now}, assertion valid "
    "from {nbf}, expiry time of assertion {exp}. " + _CERT_DOCS, status=401))
aadsts.CATALOG.setdefault(700023, aadsts.Aadsts(
    "invalid_client", "Client assertion audience claim does not match Realm issuer. Review the documentation at "
    "https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
    status=401))
aadsts.CATALOG.setdefault(700021, aadsts.Aadsts(
    "invalid_client", "Client assertion application identifier doesn't match 'client_id' parameter. " + _CERT_DOCS,
    status=401))
aadsts.CATALOG.setdefault(50027, aadsts.Aadsts("invalid_request", "{detail}"))
aadsts.CATALOG.setdefault(7000112, aadsts.Aadsts("unauthorized_client",
                                                 "Application '{client_id}'({name}) is disabled."))


#: Per-request facts kept between the steps of one token request (correlation id, credential kind).
_CORRELATION = web.RequestKey("m365sim.correlation", str)
_CREDENTIAL = web.RequestKey("m365sim.credential", str)


def _ests_time(ts: float) -> str:
    """ESTS's 7-digit ISO time (``2024-10-02T22:05:03.6755165Z``) of AADSTS700024."""
    dt = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"


# ---------------------------------------------------------------------- registered certificates

@dataclass(frozen=True)
class KeyCredential:
    """One registered certificate of an app: what Entra keeps (thumbprints, public key, validity)."""
    sha1: str      # upper-case hex, as the portal shows the thumbprint
    sha256: str    # upper-case hex
    public_key: object
    not_before: float
    not_after: float
    pem: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> "KeyCredential":
        return cls(cert.fingerprint(hashes.SHA1()).hex().upper(), cert.fingerprint(hashes.SHA256()).hex().upper(),
                   cert.public_key(), cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp(),
                   cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))

    def summary(self) -> dict:
        return {"thumbprint": self.sha1, "thumbprintSha256": self.sha256,
                "notBefore": utc_iso(self.not_before), "notAfter": utc_iso(self.not_after)}


class GeneratedCertificates:
    """The certificates the simulator makes itself (``{generated: name}`` in a scenario): one RSA key
    and self-signed certificate per name for the life of the process, written to the state directory
    as ``<name>.pfx`` (password ``demo``) and ``<name>.cer`` (DER)."""

    PASSWORD = b"demo"

    def __init__(self):
        self._made: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple:
        """(private key, certificate) of ``name``, made on first use."""
        with self._lock:
            if name not in self._made:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
                now = _dt.datetime.now(_dt.timezone.utc)
                cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                        .public_key(key.public_key()).serial_number(x509.random_serial_number())
                        .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=365))
                        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                     key_encipherment=True, data_encipherment=False,
                                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                     encipher_only=False, decipher_only=False), critical=True)
                        .sign(key, hashes.SHA256()))
                self._made[name] = (key, cert)
            return self._made[name]

    def credential(self, name: str) -> KeyCredential:
        return KeyCredential.of(self.get(name)[1])

    def write(self, name: str, directory: Path) -> Path:
        """Write ``<name>.pfx`` and ``<name>.cer`` into ``directory``; return the PFX path."""
        key, cert = self.get(name)
        directory.mkdir(parents=True, exist_ok=True)
        pfx = pkcs12.serialize_key_and_certificates(name.encode(), key, cert, None,
                                                    serialization.BestAvailableEncryption(self.PASSWORD))
        for suffix, data in ((".pfx", pfx), (".cer", cert.public_bytes(serialization.Encoding.DER))):
            tmp = directory / f".{name}{suffix}.{os.getpid()}"
            tmp.write_bytes(data)
            os.replace(tmp, directory / f"{name}{suffix}")
        return directory / f"{name}.pfx"


def generated_certificates(state) -> GeneratedCertificates:
    """The process's generated certificates, kept on the simulator state (shared by the services)."""
    store = getattr(state, "generated_certificates", None)
    if store is None:
        store = state.generated_certificates = GeneratedCertificates()
    return store


def generated_names(scenario: dict) -> list[str]:
    """Every ``{generated: name}`` certificate the scenario's app registrations refer to."""
    return sorted({c["generated"] for t in scenario["tenants"] for a in t.get("apps", [])
                   for c in a.get("certificates", []) if "generated" in c})


def key_credentials(state, app: dict) -> list[KeyCredential]:
    out = []
    for c in app.get("certificates", []):
        if "generated" in c:
            out.append(generated_certificates(state).credential(c["generated"]))
        else:
            out.append(_pem_credential(c["pem"]))
    return out


_PEM_CREDENTIALS: dict[str, KeyCredential] = {}


def _pem_credential(text: str) -> KeyCredential:
    cred = _PEM_CREDENTIALS.get(text)
    if cred is None:
        cred = _PEM_CREDENTIALS[text] = KeyCredential.of(load_certificate(text))
    return cred


def workload_policy_results(tenant: dict, app_id: str, client_ip: str) -> list[dict]:
    """Every Conditional Access policy for workload identities of ``tenant``, evaluated for a
    client-credentials sign-in of ``app_id`` from ``client_ip``, as the sign-in log keeps them:
    ``result`` failure (an enforced block that applies), reportOnlyFailure, notApplied,
    reportOnlyNotApplied or notEnabled."""
    out = []
    ip = ipaddress.ip_address(client_ip)

    def within(ranges):
        return any(ip in ipaddress.ip_network(r, strict=False) for r in ranges)

    for p in tenant["conditionalAccess"]:
        sp = p.get("servicePrincipals")
        if sp is None:
            continue
        applies = p["grant"] == "block"
        refs = [r.lower() for r in sp["include"]]
        if not ("all" in refs or app_id.lower() in refs) or app_id.lower() in [r.lower() for r in sp["exclude"]]:
            applies = False
        loc = p.get("locations")
        if applies and loc:
            if loc.get("includeRanges") and not within(loc["includeRanges"]):
                applies = False
            elif within(loc.get("trustedRanges", []) + loc.get("excludedRanges", [])):
                applies = False
        if p["state"] == "off":
            result = "notEnabled"
        elif p["state"] == "reportOnly":
            result = "reportOnlyFailure" if applies else "reportOnlyNotApplied"
        else:
            result = "failure" if applies else "notApplied"
        out.append({"id": p["id"], "name": p["name"], "displayName": policy_display_name(p), "state": p["state"],
                    "grant": p["grant"], "microsoftManaged": p.get("microsoftManaged", False), "result": result})
    return out


def workload_policy_blocks(tenant: dict, app_id: str, client_ip: str) -> list[str]:
    """Ids of the enforced Conditional Access policies for workload identities that block ``app_id``."""
    return [p["id"] for p in workload_policy_results(tenant, app_id, client_ip) if p["result"] == "failure"]


class _Refused(Exception):
    """Ends a token request with an already-shaped error response."""

    def __init__(self, response: web.Response):
        super().__init__(response.status)
        self.response = response


def _ests_headers(request: web.Request, code: int = 0) -> dict:
    headers = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-ests-server": "2.1.sim - LOCAL ProdSlices",
               "x-ms-clitelem": f"1,{code},0,,", "P3P": 'CP="DSP CUR OTPi IND OTRi ONL FIN"'}
    if "client-request-id" in request.headers:
        headers["client-request-id"] = request.headers["client-request-id"]
    return headers


def _discovery_v2(tid: str, issuer_tid: str) -> dict:
    base = f"{LOGIN}/{tid}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{LOGIN}/{issuer_tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                             "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                             "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
                             "c_hash", "email"],
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": "WW",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def _discovery_v1(tid: str, issuer_tid: str) -> dict:
    base = f"{LOGIN}/{tid}"
    return {"token_endpoint": f"{base}/oauth2/token", "authorization_endpoint": f"{base}/oauth2/authorize",
            "jwks_uri": f"{LOGIN}/common/discovery/keys", "issuer": f"https://sts.windows.net/{issuer_tid}/",
            "id_token_signing_alg_values_supported": ["RS256"], "tenant_region_scope": "WW",
            "cloud_instance_name": "microsoftonline.com", "msgraph_host": "graph.microsoft.com"}


class EntraService:
    def __init__(self, state):
        self.state = state
        r = Routes()
        r.add("GET", r"/(?P<tenant>[^/]+)(?P<v2>/v2\.0)?/\.well-known/openid-configuration", self.discovery)
        r.add("GET", r"/(?P<tenant>[^/]+)/discovery(?:/v2\.0)?/keys", self.jwks)
        r.add("GET", r"/common/discovery/instance", self.instance_discovery)
        r.add("GET", r"/common/userrealm/(?P<upn>[^/]+)", self.userrealm)
        r.add("GET POST", r"/GetUserRealm\.srf", self.get_user_realm_srf)
        r.add("POST", r"/(?P<tenant>[^/]+)/oauth2/(?P<v2>v2\.0/)?token", self.token)
        r.add("POST", r"/extSTS\.srf", self.ext_sts)
        r.add("GET", r"/error", self.error_page)
        self.routes = r

    # ------------------------------------------------------------------ pipeline

    def endpoint(self, request: web.Request) -> str:
        path = request.path.lower()
        if path == "/extsts.srf":
            return "sharepoint.sts"
        if path.endswith("/token"):
            return "entra.token"
        if "userrealm" in path:
            return "entra.userrealm"
        if path.endswith("/keys"):
            return "entra.jwks"
        return "entra.discovery"

    def fault_response(self, request: web.Request, status: int, retry_after: int | None) -> web.Response:
        headers = _ests_headers(request)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if request.path.lower() == "/extsts.srf":
            return text_response(f"<html><body>HTTP {status}</body></html>", status, "text/html", headers)
        return json_response({"error": "temporarily_unavailable",
                              "error_description": f"The service is temporarily unavailable (HTTP {status}).",
                              "error_codes": [], "timestamp": aadsts.now_stamp(),
                              "trace_id": headers["x-ms-request-id"],
                              "correlation_id": request.headers.get("client-request-id", str(uuid.uuid4()))},
                             status, headers)

    async def handle(self, request: web.Request) -> web.Response:
        handler, groups, known = self.routes.match(request.method, request.path)
        if handler is None:
            return text_response("Not Found" if not known else "Method Not Allowed", 405 if known else 404)
        return await handler(request, **groups)

    @staticmethod
    def _correlation(request: web.Request) -> str:
        """The request's correlation id: the client's ``client-request-id`` (msal sends one per
        request), else one Entra makes up; the same in the error body and the sign-in log."""
        cid = request.get(_CORRELATION)
        if cid is None:
            cid = request[_CORRELATION] = request.headers.get("client-request-id") or str(uuid.uuid4())
        return cid

    def _error(self, request: web.Request, code: int, **params) -> web.Response:
        status, body = aadsts.token_error(code, correlation_id=self._correlation(request), **params)
        return json_response(body, status, _ests_headers(request, code))

    # ------------------------------------------------------------------ discovery

    def _resolve(self, tenant_key: str) -> dict | None:
        return self.state.directory.tenant(tenant_key)

    async def discovery(self, request: web.Request, tenant: str, v2: str | None = None) -> web.Response:
        """OIDC discovery for a tenant id or domain (v1 or v2.0), or ``common``/``organizations``."""
        if tenant.lower() in _MULTI:
            tid, issuer_tid = tenant.lower(), "{tenantid}"
        else:
            t = self._resolve(tenant)
            if t is None:
                return self._error(request, 90002, tenant=tenant)
            tid = issuer_tid = t["id"]
        doc = _discovery_v2(tid, issuer_tid) if v2 else _discovery_v1(tid, issuer_tid)
        return json_response(doc, headers=dict(_ests_headers(request), **{"Cache-Control": "max-age=86400, private"}))

    async def jwks(self, request: web.Request, tenant: str) -> web.Response:
        if tenant.lower() not in _MULTI | {"consumers"} and self._resolve(tenant) is None:
            return self._error(request, 90002, tenant=tenant)
        return json_response({"keys": [self.state.tokens.jwk]}, headers=_ests_headers(request))

    async def instance_discovery(self, request: web.Request) -> web.Response:
        authority = request.query.get("authorization_endpoint", f"{LOGIN}/common/oauth2/v2.0/authorize")
        tenant = authority.split("login.microsoftonline.com/", 1)[-1].split("/", 1)[0] or "common"
        return json_response({
            "tenant_discovery_endpoint": f"{LOGIN}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": "login.microsoftonline.com",
                          "preferred_cache": "login.windows.net",
                          "aliases": ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com",
                                      "sts.windows.net"]}]}, headers=_ests_headers(request))

    # ------------------------------------------------------------------ user realm

    async def userrealm(self, request: web.Request, upn: str) -> web.Response:
        tenant = self.state.directory.tenant_for_domain(upn)
        if tenant is None:
            body = {"ver": "1.0", "account_type": "Unknown", "cloud_instance_name": "microsoftonline.com"}
        else:
            body = {"ver": "1.0", "account_type": "Managed", "domain_name": upn.rpartition("@")[2].lower(),
                    "cloud_instance_name": "microsoftonline.com",
                    "cloud_audience_urn": "urn:federation:MicrosoftOnline"}
        return json_response(body, headers=_ests_headers(request))

    async def get_user_realm_srf(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update(await request.post())
        login = params.get("login", "")
        tenant = self.state.directory.tenant_for_domain(login) if "@" in login else None
        ns = "Managed" if tenant else "Unknown"
        info = {"State": 4 if tenant else 1, "UserState": 1, "Login": login, "NameSpaceType": ns}
        if tenant:
            info.update({"DomainName": login.rpartition("@")[2].lower(), "FederationBrandName": tenant["name"],
                         "CloudInstanceName": "microsoftonline.com",
                         "CloudInstanceIssuerUri": "urn:federation:MicrosoftOnline"})
        if params.get("xml") == "1":
            inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in info.items())
            inner += "<IsFederatedNS>false</IsFederatedNS>"
            return text_response(f'<?xml version="1.0" ?><RealmInfo Success="true">{inner}</RealmInfo>',
                                 content_type="text/xml; charset=utf-8")
        return json_response(info)

    async def error_page(self, request: web.Request) -> web.Response:
        code = request.query.get("code", "")
        return text_response(f"<html><body>AADSTS{escape(code)}</body></html>", content_type="text/html")

    # ------------------------------------------------------------------ token endpoint

    async def token(self, request: web.Request, tenant: str, v2: str | None = None) -> web.Response:
        form = await request.post()
        grants = {"password": self._password_grant, "client_credentials": self._client_credentials,
                  "refresh_token": self._refresh_grant}
        try:
            grant = self._required(request, form, "grant_type")
            client_id = self._required(request, form, "client_id")
            if grant not in grants:
                raise _Refused(self._error(request, 70003, grant_type=grant))
            return await grants[grant](request, form, tenant, client_id, bool(v2))
        except _Refused as refused:
            return refused.response

    def _required(self, request, form, name: str) -> str:
        value = form.get(name)
        if value is None or (value == "" and name != "password"):
            raise _Refused(self._error(request, 900144, parameter=name))
        return value

    def _admit(self, request, form, tenant_key: str, client_id: str, *, username: str | None,
               confidential: bool, scope: str | None) -> tuple[dict, str, list[str]]:
        """(tenant, resource, scopes) when the client may ask this tenant for this resource; else raises."""
        tenant = self._tenant_for(request, tenant_key, username)
        app = self.state.directory.app(client_id)
        if app is None or not (app["multiTenant"] or (app.get("homeTenant") or "").lower() == tenant["id"].lower()):
            raise _Refused(self._error(request, 700016, client_id=client_id, tenant=tenant["name"]))
        if confidential or not app["publicClient"]:
            secret = form.get("client_secret")
            if not secret:
                raise _Refused(self._error(request, 7000218))
            if secret not in app["secrets"]:
                raise _Refused(self._error(request, 7000215, client_id=client_id))
        resource, scopes = self._resource(request, scope, tenant=tenant)
        return tenant, resource, scopes

    def _resource(self, request, scope: str | None, *, tenant: dict) -> tuple[str, list[str]]:
        """(resource URL, requested scopes); an unknown resource is refused with AADSTS500011."""
        resource, scopes, raw = self._find_resource(scope, tenant=tenant)
        if resource is None:
            raise _Refused(self._error(request, 500011, resource=raw, tenant=tenant["name"]))
        return resource, scopes

    def _find_resource(self, scope: str | None, *, tenant: dict) -> tuple[str | None, list[str], str]:
        """(resource URL or None when unknown, requested scopes, raw resource text)."""
        scopes = (scope or "").split()
        wanted = [s for s in scopes if s.lower() not in _RESERVED_SCOPES]
        if not wanted:
            return "https://graph.microsoft.com", scopes, "https://graph.microsoft.com"
        first = wanted[0]
        if "://" in first:
            scheme, rest = first.split("://", 1)
            raw = f"{scheme}://{rest.split('/', 1)[0]}"
        elif "/" in first:
            raw = first.split("/", 1)[0]
        else:
            return "https://graph.microsoft.com", scopes, "https://graph.microsoft.com"
        low = raw.lower().rstrip("/")
        for url, app_id in RESOURCE_APP_IDS.items():
            if low in (url, app_id) and url.startswith("https://"):
                return url, scopes, raw
        if low == SPO_APP_ID:
            return f"https://{tenant['sharepoint']['name']}.sharepoint.com" if tenant.get("sharepoint") else None, scopes, raw
        host = low.split("://", 1)[-1]
        spo = self.state.directory.spo_host(host)
        if spo is not None and spo.tenant is tenant:
            return f"https://{host}", scopes, raw
        return None, scopes, raw

    @staticmethod
    def resource_app_id(resource: str) -> str:
        return RESOURCE_APP_IDS.get(resource, SPO_APP_ID)

    def _tenant_for(self, request, tenant_key: str, username: str | None) -> dict:
        if tenant_key.lower() in _MULTI:
            if username and "@" in username:
                t = self.state.directory.tenant_for_domain(username)
                if t is not None:
                    return t
                raise _Refused(self._error(request, 50034, tenant=username.rpartition("@")[2]))
            raise _Refused(self._error(request, 50059))
        t = self._resolve(tenant_key)
        if t is None:
            raise _Refused(self._error(request, 90002, tenant=tenant_key))
        return t

    async def _password_grant(self, request, form, tenant_key, client_id, v2):
        username = self._required(request, form, "username")
        password = self._required(request, form, "password")
        tenant, resource, scopes = self._admit(request, form, tenant_key, client_id, username=username,
                                               confidential=False, scope=form.get("scope"))
        ip = self.state.client_ip(request)
        decision = evaluate(self.state.directory, tenant, username, password, client_app=MODERN, client_ip=ip,
                            resource_app_id=self.resource_app_id(resource))
        app = self.state.directory.app(client_id)
        self.state.log_signin(user=username, tenant=tenant, path="ropc", ip=ip, app_id=client_id,
                              resource=resource, decision=decision, correlation_id=self._correlation(request),
                              app_display_name=app["displayName"] if app else None)
        if not decision.ok:
            return self._error(request, decision.code, claims=decision.claims, **decision.params)
        user = self.state.directory.user(username)
        return self._user_tokens(request, tenant, user, client_id, resource, scopes, ip, v2)

    async def _refresh_grant(self, request, form, tenant_key, client_id, v2):
        data = self.state.tokens.unseal("rt", form.get("refresh_token"))
        if data is None or data["cid"].lower() != client_id.lower():
            return self._error(request, 70000)
        tenant = self.state.directory.tenant(data["tid"])
        user = self.state.directory.user(data["upn"])
        if tenant is None or user is None:
            return self._error(request, 70000)
        if user["state"] in ("disabled", "locked"):
            return self._error(request, 50057 if user["state"] == "disabled" else 50053)
        resource, scopes = self._resource(request, form.get("scope"), tenant=tenant)
        return self._user_tokens(request, tenant, user, client_id, resource, scopes, self.state.client_ip(request), v2,
                                 grant="refresh_token")

    def _user_tokens(self, request, tenant, user, client_id, resource, scopes, ip, v2,
                     grant: str = "password") -> web.Response:
        now = int(time.time())
        life = self.state.scenario["settings"]["tokenLifetimeSeconds"]
        tid = tenant["id"]
        cache_key = (grant, self.state.version, tid, user["id"], client_id, resource, tuple(scopes), ip)
        first, _, last = user["displayName"].partition(" ")
        scp = " ".join(s.rsplit("/", 1)[-1] for s in scopes if s.lower() not in _RESERVED_SCOPES) or "User.Read"
        access = self.state.tokens.sign({
            "aud": resource, "iss": f"https://sts.windows.net/{tid}/", "iat": now, "nbf": now, "exp": now + life,
            "acr": "1", "amr": ["pwd"], "appid": client_id, "appidacr": "0", "family_name": last or first,
            "given_name": first, "idtyp": "user", "ipaddr": ip, "name": user["displayName"], "oid": user["id"],
            "scp": scp.replace(".default", "User.Read"), "sub": stable_id("sub", user["id"], client_id),
            "tid": tid, "unique_name": user["upn"], "upn": user["upn"], "preferred_username": user["upn"],
            "uti": b64url(uuid.uuid4().bytes), "ver": "1.0",
            "wids": [ROLE_TEMPLATE_IDS[r] for r in user["roles"]] + ["b79fbf4d-3ef9-4689-8143-76b194e85509"],
        }, cache_key=cache_key + ("access",))
        id_token = self.state.tokens.sign({
            "aud": client_id, "iss": f"{LOGIN}/{tid}/v2.0", "iat": now, "nbf": now, "exp": now + 3600,
            "name": user["displayName"], "oid": user["id"], "preferred_username": user["upn"],
            "sub": stable_id("sub", user["id"], client_id), "tid": tid, "ver": "2.0",
            "uti": b64url(uuid.uuid4().bytes)}, cache_key=cache_key + ("id",))
        refresh = self.state.tokens.seal("rt", {"upn": user["upn"], "tid": tid, "cid": client_id}, 90 * 86400,
                                         cache_key=cache_key)
        body = {"token_type": "Bearer", "scope": " ".join(s for s in scopes) or "User.Read",
                "expires_in": life - 1, "ext_expires_in": life - 1, "access_token": access,
                "refresh_token": refresh, "id_token": id_token,
                "client_info": b64url(dumps({"uid": user["id"], "utid": tid}).encode())}
        if not v2:
            body.update({"resource": resource, "expires_on": str(now + life - 1)})
        return json_response(body, headers=_ests_headers(request))

    async def _client_credentials(self, request, form, tenant_key, client_id, v2):
        counters = self.state.counters
        counters.hit("entra.token.client_credentials")
        try:
            response = await self._client_credentials_grant(request, form, tenant_key, client_id, v2)
        except _Refused as refused:
            response = refused.response
        counters.status("entra.token.client_credentials", response.status)
        return response

    async def _client_credentials_grant(self, request, form, tenant_key, client_id, v2):
        scope = self._required(request, form, "scope") if v2 else self._required(request, form, "resource") + \
            "/.default"
        tenant = self._tenant_for(request, tenant_key, None)
        registration = self.state.directory.tenant_app(tenant, client_id)
        if registration is not None:
            return self._app_registration_token(request, form, tenant_key, tenant, registration, scope, v2)
        tenant, resource, scopes = self._admit(request, form, tenant_key, client_id, username=None,
                                               confidential=True, scope=scope)
        app = self.state.directory.app(client_id)
        now = int(time.time())
        life = self.state.scenario["settings"]["tokenLifetimeSeconds"]
        tid = tenant["id"]
        oid = stable_id("sp", tid, client_id.lower())
        claims = {"aud": resource, "iss": f"https://sts.windows.net/{tid}/", "iat": now, "nbf": now,
                  "exp": now + life, "appid": client_id, "appidacr": "1", "idp": f"https://sts.windows.net/{tid}/",
                  "idtyp": "app", "oid": oid, "sub": oid, "tid": tid, "uti": b64url(uuid.uuid4().bytes),
                  "ver": "1.0"}
        if app["roles"]:
            claims["roles"] = list(app["roles"])
        token = self.state.tokens.sign(claims, cache_key=("client_credentials", self.state.version, tid,
                                                          client_id, resource))
        self.state.log_signin(user=None, tenant=tenant, path="clientCredentials", ip=self.state.client_ip(request),
                              app_id=client_id, resource=resource, decision=None,
                              correlation_id=self._correlation(request), app_display_name=app["displayName"],
                              credential="clientSecret")
        body = {"token_type": "Bearer", "expires_in": life - 1, "ext_expires_in": life - 1, "access_token": token}
        if not v2:
            body.update({"resource": resource, "expires_on": str(now + life - 1)})
        return json_response(body, headers=_ests_headers(request))

    # ------------------------------------------------------------------ app registrations (app-only)

    def _app_refusal(self, request, in_tenant, app_id, code, *, policies: list[dict] | None = None,
                     signed_in_to: str | None = None, **params) -> _Refused:
        app = self.state.directory.tenant_app(in_tenant, app_id) if in_tenant else None
        self.state.log_signin(user=None, tenant=in_tenant, path="clientCredentials", ip=self.state.client_ip(request),
                              app_id=app_id, resource=signed_in_to, decision=None, error_code=code,
                              correlation_id=self._correlation(request), policies=policies,
                              error_params={k: v for k, v in params.items() if k != "claims"},
                              app_display_name=app["displayName"] if app else None,
                              credential=request.get(_CREDENTIAL))
        return _Refused(self._error(request, code, **params))

    def _app_registration_token(self, request, form, tenant_key, tenant, app, scope, v2) -> web.Response:
        """client_credentials for an app registration of the tenant (scenario ``tenants[].apps``):
        the credential (certificate assertion or secret), the resource, Conditional Access for
        workload identities, then a token whose ``roles`` are the consented permissions."""
        app_id = app["appId"]
        if not app["enabled"]:
            raise self._app_refusal(request, tenant, app_id, 7000112, client_id=app_id, name=app["displayName"])
        if form.get("client_assertion") or form.get("client_assertion_type"):
            request[_CREDENTIAL] = "clientAssertion"
            self._verify_assertion(request, form, tenant_key, tenant, app)
            acr = "2"
        elif form.get("client_secret"):
            request[_CREDENTIAL] = "clientSecret"
            if form["client_secret"] not in app["secrets"]:
                raise self._app_refusal(request, tenant, app_id, 7000215, client_id=app_id)
            acr = "1"
        else:
            raise self._app_refusal(request, tenant, app_id, 7000218)
        resource, raw = self._app_resource(scope, tenant)
        if resource is None:
            raise self._app_refusal(request, tenant, app_id, 500011, resource=raw, tenant=tenant["name"])
        ip = self.state.client_ip(request)
        evaluated = workload_policy_results(tenant, app_id, ip)
        blocked = [p["id"] for p in evaluated if p["result"] == "failure"]
        if blocked:
            raise self._app_refusal(request, tenant, app_id, 53003, policies=evaluated, signed_in_to=resource, claims={
                "access_token": {"capolids": {"essential": True, "values": blocked}}})
        granted = app["permissions"]["graph" if resource == GRAPH else "sharepoint"] if app["consented"] else []
        now = int(time.time())
        life = self.state.scenario["settings"]["tokenLifetimeSeconds"]
        tid = tenant["id"]
        oid = stable_id("sp", tid, app_id.lower())
        aud = resource if resource == GRAPH else SPO_APP_ID
        claims = {"aud": aud, "iss": f"https://sts.windows.net/{tid}/", "iat": now, "nbf": now, "exp": now + life,
                  "app_displayname": app["displayName"], "appid": app_id, "appidacr": acr,
                  "idp": f"https://sts.windows.net/{tid}/", "idtyp": "app", "oid": oid, "sub": oid, "tid": tid,
                  "uti": b64url(uuid.uuid4().bytes), "ver": "1.0"}
        if granted:  # no admin consent (or nothing granted): Entra issues the token without a roles claim
            claims["roles"] = list(granted)
        token = self.state.tokens.sign(claims, cache_key=("app_registration", self.state.version, tid, app_id,
                                                          resource, acr))
        self.state.log_signin(user=None, tenant=tenant, path="clientCredentials", ip=ip, app_id=app_id,
                              resource=resource, decision=None, correlation_id=self._correlation(request),
                              policies=evaluated, app_display_name=app["displayName"],
                              credential=request.get(_CREDENTIAL))
        body = {"token_type": "Bearer", "expires_in": life - 1, "ext_expires_in": life - 1, "access_token": token}
        if not v2:
            body.update({"resource": resource, "expires_on": str(now + life - 1)})
        return json_response(body, headers=_ests_headers(request))

    def _app_resource(self, scope: str, tenant: dict) -> tuple[str | None, str]:
        """(resource, raw text): Graph or one of the tenant's SharePoint hosts, from ``<resource>/.default``."""
        resource, _, raw = self._find_resource(scope, tenant=tenant)
        if resource == GRAPH or (resource or "").endswith(".sharepoint.com"):
            return resource, raw
        return None, raw

    def _verify_assertion(self, request, form, tenant_key: str, tenant: dict, app: dict) -> KeyCredential:
        """Check a ``private_key_jwt`` client assertion as Entra does; raise the matching AADSTS error."""
        app_id = app["appId"]

        def refuse(code, **params):
            return self._app_refusal(request, tenant, app_id, code, **params)

        assertion = form.get("client_assertion") or ""
        if form.get("client_assertion_type") != JWT_BEARER or not assertion:
            raise refuse(7000218)
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise refuse(50027, detail="JWT token is invalid or malformed.") from None
        presented = header.get("x5t#S256") or header.get("x5t")
        if not isinstance(presented, str) or not presented:
            raise refuse(50027, detail="Invalid JWT token. No certificate thumbprint specified in token header.")
        try:
            thumbprint = b64url_decode(presented.replace("+", "-").replace("/", "_").rstrip("=")).hex().upper()
        except ValueError:
            thumbprint = presented
        creds = key_credentials(self.state, app)
        cred = next((c for c in creds if thumbprint in (c.sha1, c.sha256)), None)
        if cred is None:
            raise refuse(700027, detail=(
                "The certificate with identifier used to sign the client assertion is not registered on application. "
                f"[Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', "
                + _DOCS_GRAPH_KEYS.format(client_id=app_id) + "]. Alternatively, SNI may be configured on the app. "
                "Please ensure that client assertion is being sent with the x5c claim in the JWT header using MSAL's "
                "WithSendX5C() method so that Azure Active Directory can validate the certificate being used."))
        found = (f"Found key 'Start={time.strftime('%m/%d/%Y %H:%M:%S', time.gmtime(cred.not_before))}, "
                 f"End={time.strftime('%m/%d/%Y %H:%M:%S', time.gmtime(cred.not_after))}'")
        try:
            jwt.decode(assertion, cred.public_key, algorithms=[header.get("alg") if header.get("alg") in
                                                                ("RS256", "PS256") else "RS256"],
                       options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False})
        except jwt.PyJWTError:
            raise refuse(700027, detail=(
                "Client assertion contains an invalid signature. [Reason - Key was found, but use of the key to "
                f"verify the signature failed., Thumbprint of key used by client: '{thumbprint}', {found}, "
                + _DOCS_GRAPH_KEYS.format(client_id=app_id) + "].")) from None
        now = time.time()
        if now > cred.not_after:
            raise refuse(700027, detail=(
                "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of "
                f"key used by client: '{thumbprint}', {found}, " + _DOCS_GRAPH_KEYS.format(client_id=app_id) + "]."))
        audiences = {f"{LOGIN}/{key}/oauth2/{v}token".lower() for key in
                     {tenant_key, tenant["id"], *tenant["domains"]} for v in ("", "v2.0/")}
        if str(unverified.get("aud", "")).lower().rstrip("/") not in audiences:
            raise refuse(700023)
        if str(unverified.get("iss", "")).lower() != app_id.lower() or \
                str(unverified.get("sub", app_id)).lower() != app_id.lower():
            raise refuse(700021)
        nbf, exp = unverified.get("nbf"), unverified.get("exp")
        if not isinstance(exp, (int, float)) or now > exp + ASSERTION_SKEW_SECONDS or \
                (isinstance(nbf, (int, float)) and now < nbf - ASSERTION_SKEW_SECONDS):
            raise refuse(700024, now=_ests_time(now), nbf=_ests_time(nbf if isinstance(nbf, (int, float)) else 0),
                         exp=_ests_time(exp if isinstance(exp, (int, float)) else 0))
        return cred

    # ------------------------------------------------------------------ extSTS.srf (legacy SharePoint sign-in)

    def _fault(self, text: str) -> web.Response:
        rid = str(uuid.uuid4())
        xml = aadsts.sts_fault(text, server_time=utc_iso(micro=True), request_id=rid)
        return text_response(xml, 200, "application/soap+xml; charset=utf-8", {"x-ms-request-id": rid})

    async def ext_sts(self, request: web.Request) -> web.Response:
        body = await request.read()
        parsed = parse_rst(body)
        if parsed is None:
            return self._fault(aadsts.message(90023))
        username, password, applies_to = parsed
        directory = self.state.directory
        host = applies_to.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
        user_tenant = directory.tenant_for_domain(username)
        spo = directory.spo_host(host)
        spo_tenant = spo.tenant if spo else user_tenant
        ip = self.state.client_ip(request)
        if user_tenant is None:
            self.state.log_signin(user=username, tenant=None, path="legacySts", ip=ip, app_id=None,
                                  resource=applies_to, decision=None, error_code=50034,
                                  correlation_id=self._correlation(request))
            return self._fault(aadsts.message(50034, tenant=username.rpartition("@")[2]))
        # A tenant whose IDCRL sign-in is blocked or retired still gets its token here: real clients
        # report the refusal at wsignin1.0 (vgrem/Office365-REST-Python-Client#1012, #982, #986).
        decision = evaluate(directory, user_tenant, username, password, client_app=LEGACY, client_ip=ip,
                            resource_app_id=SPO_APP_ID)
        self.state.log_signin(user=username, tenant=user_tenant, path="legacySts", ip=ip, app_id=None,
                              resource=applies_to, decision=decision, correlation_id=self._correlation(request))
        if not decision.ok:
            return self._fault(aadsts.message(decision.code, **decision.params))
        user = directory.user(username)
        token = self.state.tokens.seal("spo", {"upn": user["upn"], "tid": user_tenant["id"], "aud": host,
                                               "ap": decision.app_password}, 86400)
        now = time.time()
        xml = aadsts.sts_token_response(
            token=f"t={token}&p=", applies_to=applies_to, created=utc_iso(now), expires=utc_iso(now + 86400),
            ts_created=utc_iso(now, micro=True), ts_expires=utc_iso(now + 300, micro=True))
        return text_response(xml, 200, "application/soap+xml; charset=utf-8")


_NS = {"s": aadsts.NS_SOAP, "wsse": aadsts.NS_WSSE, "wst": aadsts.NS_WST, "wsp": aadsts.NS_WSP}
_ADDRESSING = ("http://www.w3.org/2005/08/addressing", "http://schemas.xmlsoap.org/ws/2004/08/addressing",
               "http://schemas.xmlsoap.org/ws/2004/03/addressing")


def parse_rst(body: bytes) -> tuple[str, str, str] | None:
    """(username, password, AppliesTo address) from a WS-Trust 2005 RST Issue envelope, or None."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return None
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None
    user = root.find(".//wsse:UsernameToken/wsse:Username", _NS)
    pwd = root.find(".//wsse:UsernameToken/wsse:Password", _NS)
    rst = root.find("s:Body/wst:RequestSecurityToken", _NS)
    if user is None or pwd is None or rst is None or not (user.text or "").strip():
        return None
    address = None
    applies = rst.find("wsp:AppliesTo", _NS)
    if applies is not None:
        for ns in _ADDRESSING:
            node = applies.find(f"{{{ns}}}EndpointReference/{{{ns}}}Address")
            if node is not None and node.text:
                address = node.text.strip()
                break
    if not address:
        return None
    return user.text.strip(), pwd.text or "", address
