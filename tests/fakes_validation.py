"""A scripted :class:`AccountProbe` for service tests: each step answers from a queue.

Every call is recorded (method, arguments without the password's value) so that tests can count
upstream requests per path and check where the password went.

App profiles: ``app_token`` answers from the queue of its step (``graphToken`` or
``sharePointToken``), signs a digest through the form's signer like the real adapter (so tests count
Key Vault sign operations and see which key signed), and by default returns the backup workload's
roles; ``sharepoint_root`` answers ``https://contoso.sharepoint.com``.
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

from shared.domain.certificates import CertificateInfo
from shared.domain.probes import AccountProbe, Grant, ProbeResult
from shared.domain.profile import Password

GA = "62e90394-69f5-4237-9190-012177145e10"
SPA = "f28a1f50-f6e7-4571-818b-6a12f2af6b6c"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"

STEP_OF = {"sign_in_modern": "token", "get_roles": "memberOf", "sign_in_legacy": "wsignin",
           "check_admin_center": "contextinfo", "graphToken": "graphToken", "sharePointToken": "sharePointToken",
           "sharepoint_root": "sitesRoot", "check_sharepoint_app_only": "appOnlyWeb", "diagnosis": "diagnosis"}
#: Requests a successful call of each method costs (legacy sign-in: extSTS + wsignin).
REQUESTS_OF = {"sign_in_modern": 1, "get_roles": 1, "sign_in_legacy": 2, "check_admin_center": 1,
               "graphToken": 1, "sharePointToken": 1, "sharepoint_root": 1, "check_sharepoint_app_only": 1,
               "diagnosis": 1}
#: The roles the consented demo app's tokens carry (the backup workload's needs).
APP_ROLES = {"graphToken": ("Sites.FullControl.All", "User.Read.All"), "sharePointToken": ("Sites.FullControl.All",),
             # the Graph token of a diagnosis app profile (names blocking policies from the sign-in log)
             "diagnosis": ("Sites.FullControl.All", "User.Read.All", "AuditLog.Read.All", "Policy.Read.All")}
CONTOSO_SHAREPOINT = "https://contoso.sharepoint.com"


def ok(method: str, **kw) -> ProbeResult:
    defaults = dict(ok=True, step=STEP_OF[method], requests=REQUESTS_OF[method],
                    correlation_id="cid-from-upstream")
    if method in ("sign_in_modern", "sign_in_legacy", "graphToken", "sharePointToken", "diagnosis"):
        defaults["grant"] = Grant("opaque-token-or-cookies")
    if method in APP_ROLES:
        defaults["role_names"] = APP_ROLES[method]
    if method == "sharepoint_root":
        defaults["url"] = CONTOSO_SHAREPOINT
    return ProbeResult(**{**defaults, **kw})


def failed(method: str, code: str | None = None, *, status: int | None = 400, **kw) -> ProbeResult:
    defaults = dict(ok=False, error_code=code, http_status=status, step=STEP_OF[method], requests=1,
                    error_description=f"{code}: scripted failure" if code else None,
                    correlation_id="cid-from-upstream", trace_id="trace-1")
    return ProbeResult(**{**defaults, **kw})


@dataclass
class Call:
    method: str
    args: tuple
    password_seen: bool = False


@dataclass
class FakeAccountProbe(AccountProbe):
    """Answers each method from ``script[method]`` (a queue); defaults to success as a Global
    Administrator."""

    script: dict = field(default_factory=lambda: defaultdict(deque))
    calls: list = field(default_factory=list)
    #: Key Vault key ids the signer was called with, one per ``app_token`` call (a sign operation).
    signed_with: list = field(default_factory=list)

    def answer(self, method: str, *results: ProbeResult) -> "FakeAccountProbe":
        self.script.setdefault(method, deque()).extend(results)
        return self

    def _next(self, method: str, args: tuple, password: Password | None = None) -> ProbeResult:
        self.calls.append(Call(method, tuple(a for a in args if not isinstance(a, Password)),
                               password_seen=password is not None))
        queue = self.script.get(method)
        if queue:
            return queue.popleft()
        if method == "get_roles":
            return ok(method, role_template_ids=(GA,), role_names=("Global Administrator",))
        return ok(method)

    @property
    def requests(self) -> int:
        return sum(1 for _ in self.calls)

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def sign_in_modern(self, tenant_id, username, password, *, correlation_id):
        assert isinstance(password, Password)
        return self._next("sign_in_modern", (tenant_id, username, correlation_id), password)

    def get_roles(self, grant, *, correlation_id):
        assert isinstance(grant, Grant)
        return self._next("get_roles", (correlation_id,))

    def sign_in_legacy(self, username, password, admin_center_url, *, correlation_id):
        assert isinstance(password, Password)
        return self._next("sign_in_legacy", (username, admin_center_url, correlation_id), password)

    def check_admin_center(self, grant, admin_center_url, *, correlation_id):
        assert isinstance(grant, Grant)
        return self._next("check_admin_center", (admin_center_url, correlation_id))

    def app_token(self, tenant_id, client_id, certificate, sign, *, scope, correlation_id, step):
        assert isinstance(certificate, CertificateInfo) and step in ("graphToken", "sharePointToken", "diagnosis")
        signature = sign(certificate.key_id, bytes(32))
        assert isinstance(signature, bytes)
        self.signed_with.append(certificate.key_id)
        return self._next(step, (tenant_id, client_id, certificate.thumbprint, scope, correlation_id))

    def sharepoint_root(self, grant, *, correlation_id):
        assert isinstance(grant, Grant)
        return self._next("sharepoint_root", (correlation_id,))

    def check_sharepoint_app_only(self, grant, sharepoint_url, *, correlation_id):
        assert isinstance(grant, Grant)
        return self._next("check_sharepoint_app_only", (sharepoint_url, correlation_id))
