"""The port through which the Validation Test signs in as a service account.

Pure domain: no ``msal``, ``requests`` or ``azure`` imports. The concrete adapter is
:class:`shared.adapters.m365_probe.M365AccountProbe`; unit tests use ``tests/fakes_validation.py``.

A probe answers like msal does: a wrong password, a blocked sign-in or a throttled call is *data*
(:class:`ProbeResult` with ``ok=False``), never an exception. Only programming errors raise.

The Validation Test runs in steps so that a throttled step can be repeated alone:

=========================  ==============================================  =====================
step (``ProbeResult.step``) what                                            requests
=========================  ==============================================  =====================
``discovery``              OpenID configuration of the tenant, user realm   once per process
``token``                  modern sign-in (ROPC) at Microsoft Entra ID      1
``memberOf``               Microsoft Graph ``/me/memberOf`` pages           1 per page
``sts``                    SharePoint's legacy security token service       1
``wsignin``                the token posted to the admin center's sign-in   1
``contextinfo``            authenticated ``_api/contextinfo`` probe         1
``adminCenter``            the URL refused before any request               0
``graphToken``             app profile: client-credentials token for        1 (+1 Key Vault sign)
                           Microsoft Graph (certificate assertion)
``sitesRoot``              app profile: Graph ``GET /v1.0/sites/root``,     1 (only when the
                           the tenant's SharePoint host                     URL is not known)
``sharePointToken``        app profile: client-credentials token for        1 (+1 Key Vault sign)
                           SharePoint Online
``appOnlyWeb``             app profile: SharePoint app-only REST            1
                           ``GET {sharepointUrl}/_api/web``
=========================  ==============================================  =====================
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable

from shared.domain.certificates import CertificateInfo
from shared.domain.profile import Password

#: Transport conditions a probe reports in ``error_code`` when no HTTP answer came back.
TIMEOUT = "TIMEOUT"
DNS_FAILURE = "DNS_FAILURE"
CONNECTION_ERROR = "CONNECTION_ERROR"
TLS_ERROR = "TLS_ERROR"
TRANSPORT_CODES = frozenset({TIMEOUT, DNS_FAILURE, CONNECTION_ERROR, TLS_ERROR})


class Grant:
    """Opaque proof of a sign-in (an access token, or SharePoint's FedAuth/rtFa cookies).

    It travels from one probe step to the next inside one validation and is then dropped: it is
    never printed, logged, stored or put into an outcome.
    """

    __slots__ = ("_material",)

    def __init__(self, material: Any):
        self._material = material

    def reveal(self) -> Any:
        return self._material

    def __repr__(self) -> str:
        return "Grant(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class ProbeResult:
    """What one probe step found out. Never holds a password or a token in readable form.

    :ivar ok: the step succeeded.
    :ivar error_code: ``AADSTS50126``-style code from Microsoft Entra ID (token endpoint JSON or
        the SOAP fault of the legacy STS), a SharePoint/Graph condition (``SP_NO_AUTH_COOKIE``,
        ``SP_UNAUTHORIZED``, ``SP_FORBIDDEN``, ``SP_NOT_FOUND``, ``SP_URL_NOT_SHAREPOINT``,
        ``STS_INVALID_RESPONSE``, ``GRAPH_FORBIDDEN`` ...) or a transport condition
        (:data:`TRANSPORT_CODES`).
    :ivar error_description: a safe, short text (AADSTS text without trace lines; no secrets).
    :ivar http_status: status of the answer that failed the step, if any.
    :ivar retry_after: seconds from ``Retry-After`` (429/503), if the upstream sent it.
    :ivar correlation_id: the correlation id the upstream echoed (Entra ``correlation_id``).
    :ivar trace_id: Entra ``trace_id`` or SharePoint's ``SPRequestGuid``/``request-id``.
    :ivar step: which step answered (see the module table).
    :ivar suberror: Entra ``suberror`` (``basic_action``, ``message_only`` ...).
    :ivar ca_challenge: the error carried a claims challenge naming Conditional Access policies
        (``capolids``): the evidence for the Conditional Access variant of ``MFA_ENABLED``.
    :ivar role_template_ids: directory role template ids of the account (``memberOf`` step).
    :ivar role_names: display names of those roles, for messages.
    :ivar grant: the sign-in proof for the next step (``token``, ``wsignin``, ``graphToken``,
        ``sharePointToken``).
    :ivar requests: how many HTTP requests this step sent (retries included).
    :ivar url: a URL the step found out (``sitesRoot``: ``https://{siteCollection.hostname}``).

    App-profile token steps put the token's ``roles`` claim (application permissions) into
    ``role_names``.
    """

    ok: bool
    error_code: str | None = None
    error_description: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    step: str | None = None
    suberror: str | None = None
    ca_challenge: bool = False
    role_template_ids: tuple[str, ...] = ()
    role_names: tuple[str, ...] = ()
    grant: Grant | None = None
    requests: int = 0
    url: str | None = None


class AccountProbe(abc.ABC):
    """Signs in as a service account the way the product does. Implementations never raise for
    upstream answers or network trouble: they return a failed :class:`ProbeResult`."""

    #: The Microsoft Graph scope of the probe's cloud, for app-profile tokens (a cloud's adapter
    #: sets its own: ``https://graph.microsoft.us/.default`` for US Government ...).
    graph_scope: str = "https://graph.microsoft.com/.default"

    @abc.abstractmethod
    def sign_in_modern(self, tenant_id: str, username: str, password: Password, *,
                       correlation_id: str) -> ProbeResult:
        """Modern sign-in (msal username/password) for Microsoft Graph; ``grant`` on success."""

    @abc.abstractmethod
    def get_roles(self, grant: Grant, *, correlation_id: str) -> ProbeResult:
        """Directory roles of the signed-in account (Graph ``/me/memberOf``, every page)."""

    @abc.abstractmethod
    def sign_in_legacy(self, username: str, password: Password, admin_center_url: str, *,
                       correlation_id: str) -> ProbeResult:
        """SharePoint's legacy sign-in with an app password: STS token, then ``wsignin1.0`` at the
        admin center; ``grant`` holds the FedAuth/rtFa cookies on success."""

    @abc.abstractmethod
    def check_admin_center(self, grant: Grant, admin_center_url: str, *,
                           correlation_id: str) -> ProbeResult:
        """An authenticated request to the admin center (``POST _api/contextinfo``)."""

    @abc.abstractmethod
    def app_token(self, tenant_id: str, client_id: str, certificate: CertificateInfo,
                  sign: Callable[[str, bytes], bytes], *, scope: str, correlation_id: str,
                  step: str) -> ProbeResult:
        """Client-credentials token of an app registration for ``scope``, with a client assertion
        that ``sign(certificate.key_id, digest)`` signs (1 request, 1 signature); ``grant`` and
        ``role_names`` (the ``roles`` claim) on success. ``step``: ``graphToken`` | ``sharePointToken``."""

    @abc.abstractmethod
    def sharepoint_root(self, grant: Grant, *, correlation_id: str) -> ProbeResult:
        """Graph ``GET /v1.0/sites/root`` with an app-only Graph token: ``url`` is
        ``https://{siteCollection.hostname}`` on success (step ``sitesRoot``)."""

    @abc.abstractmethod
    def check_sharepoint_app_only(self, grant: Grant, sharepoint_url: str, *,
                                  correlation_id: str) -> ProbeResult:
        """SharePoint app-only REST ``GET {sharepoint_url}/_api/web`` with the SharePoint token
        (step ``appOnlyWeb``); 401 "Unsupported app only token" is ``SP_APP_ONLY_REFUSED``."""
