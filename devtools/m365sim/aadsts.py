"""The Entra ID (AADSTS) error catalog and its two wire shapes.

* OAuth2 token endpoint (v2.0): JSON ``error``, ``error_description`` ("AADSTSnnnnn: text" then
  ``\\r\\n``-separated Trace ID / Correlation ID / Timestamp lines), ``error_codes``, ``timestamp``,
  ``trace_id``, ``correlation_id``, ``error_uri`` and, where the service sends one, ``suberror``
  (and ``claims`` for Conditional Access blocks).
* SharePoint's legacy security token service (``extSTS.srf``): a SOAP 1.2 ``S:Fault`` whose
  ``psf:internalerror/psf:text`` is the single "AADSTSnnnnn: text" line.

Shapes and texts follow captured responses of the real service (see the simulator README).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Aadsts:
    error: str
    text: str
    status: int = 400
    suberror: str | None = None


_MFA_ACCESS = ("Due to a configuration change made by your administrator, or because you moved to a new "
               "location, you must use multi-factor authentication to access '{resource}'.")
_MFA_ENROLL = ("Due to a configuration change made by your administrator, or because you moved to a new "
               "location, you must enroll in multi-factor authentication to access '{resource}'.")

CATALOG: dict[int, Aadsts] = {
    50126: Aadsts("invalid_grant", "Error validating credentials due to invalid username or password."),
    50076: Aadsts("invalid_grant", _MFA_ACCESS, suberror="basic_action"),
    50079: Aadsts("invalid_grant", _MFA_ENROLL, suberror="basic_action"),
    53003: Aadsts("invalid_grant", "Access has been blocked by Conditional Access policies. The access policy "
                  "does not allow token issuance.", suberror="message_only"),
    53000: Aadsts("invalid_grant", "Device is not in required device state: compliant. Conditional Access "
                  "policy requires a compliant device, and the device is not compliant. The user must enroll "
                  "their device with an approved MDM provider like Intune.", suberror="message_only"),
    53001: Aadsts("invalid_grant", "Device is not in required device state: domain_joined. Conditional Access "
                  "policy requires a domain joined device, and the device is not domain joined. Have the user "
                  "use a domain joined device.", suberror="message_only"),
    530035: Aadsts("invalid_grant", "Access has been blocked by security defaults. This is due to the request "
                   "using legacy auth or being deemed unsafe by security defaults policies.",
                   suberror="message_only"),
    50053: Aadsts("invalid_grant", "You've tried to sign in too many times with an incorrect user ID or password."),
    50055: Aadsts("user_password_expired", "Password is expired."),
    50057: Aadsts("invalid_grant", "The user account is disabled."),
    50034: Aadsts("invalid_grant", "The user account {{EUII Hidden}} does not exist in the {tenant} directory. "
                  "To sign into this application, the account must be added to the directory.",
                  suberror="bad_token"),
    90002: Aadsts("invalid_tenant", "Tenant '{tenant}' not found. Check to make sure you have the correct tenant "
                  "ID and are signing into the correct cloud. Check with your subscription administrator, this "
                  "may happen if there are no active subscriptions for the tenant."),
    50059: Aadsts("invalid_request", "No tenant-identifying information found in either the request or implied "
                  "by any provided credentials."),
    700016: Aadsts("unauthorized_client", "Application with identifier '{client_id}' was not found in the "
                   "directory '{tenant}'. This can happen if the application has not been installed by the "
                   "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                   "your authentication request to the wrong tenant."),
    7000215: Aadsts("invalid_client", "Invalid client secret provided. Ensure the secret being sent in the "
                    "request is the client secret value, not the client secret ID, for a secret added to app "
                    "'{client_id}'.", status=401),
    7000218: Aadsts("invalid_client", "The request body must contain the following parameter: "
                    "'client_assertion' or 'client_secret'.", status=401),
    500011: Aadsts("invalid_resource", "The resource principal named {resource} was not found in the tenant "
                   "named {tenant}. This can happen if the application has not been installed by the "
                   "administrator of the tenant or consented to by any user in the tenant. You might have sent "
                   "your authentication request to the wrong tenant."),
    900144: Aadsts("invalid_request", "The request body must contain the following parameter: '{parameter}'."),
    70003: Aadsts("unsupported_grant_type", "The app requested an unsupported grant type '{grant_type}'."),
    70000: Aadsts("invalid_grant", "Provided grant is invalid or malformed."),
    90023: Aadsts("invalid_request", "Invalid STS request."),
}


def _fmt(text: str, params: dict) -> str:
    class _Keep(dict):
        def __missing__(self, key):  # leave unknown placeholders visible rather than failing
            return "{" + key + "}"
    return text.format_map(_Keep(params))


def message(code: int, **params) -> str:
    """The one-line "AADSTSnnnnn: text" as both wire shapes carry it."""
    return f"AADSTS{code}: {_fmt(CATALOG[code].text, params)}"


def now_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%SZ")


def token_error(code: int, *, correlation_id: str | None = None, trace_id: str | None = None,
                claims: dict | None = None, **params) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a token-endpoint error, exactly as ESTS shapes it."""
    entry = CATALOG[code]
    trace_id = trace_id or str(uuid.uuid4())
    correlation_id = correlation_id or str(uuid.uuid4())
    stamp = now_stamp()
    body = {
        "error": entry.error,
        "error_description": (f"{message(code, **params)}\r\nTrace ID: {trace_id}\r\n"
                              f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    if entry.suberror:
        body["suberror"] = entry.suberror
    if claims:
        body["claims"] = json.dumps(claims, separators=(",", ":"))
    return entry.status, body


# --------------------------------------------------------------------------- extSTS SOAP

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_PSF = "http://schemas.microsoft.com/Passport/SoapServices/SOAPFault"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
NS_WST = "http://schemas.xmlsoap.org/ws/2005/02/trust"
NS_WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
NS_WSA = "http://www.w3.org/2005/08/addressing"

#: PPCRL_REQUEST_E_BAD_MEMBER_NAME_OR_PASSWORD, what the real STS puts in psf:value/psf:code.
PSF_FAILED = "0x80048821"

def _envelope_ns() -> str:
    return (f'xmlns:wsa="{NS_WSA}" xmlns:wsse="{NS_WSSE}" xmlns:wsu="{NS_WSU}" xmlns:wsp="{NS_WSP}" '
            f'xmlns:wst="{NS_WST}" xmlns:S="{NS_SOAP}"')


def sts_fault(text: str, *, server_time: str, request_id: str, value: str = PSF_FAILED,
              code: str = PSF_FAILED) -> str:
    """The SOAP fault extSTS.srf answers with, in an HTTP 200 response (clients such as axios-based
    ones read the fault from a successful response)."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<S:Envelope {_envelope_ns()}>'
        f'<S:Header><psf:pp xmlns:psf="{NS_PSF}"><psf:serverVersion>1</psf:serverVersion>'
        f'<psf:authstate>0x80048800</psf:authstate><psf:reqstatus>{value}</psf:reqstatus>'
        f'<psf:serverInfo ServerTime="{server_time}">ESTS-SIM rid:{request_id}</psf:serverInfo></psf:pp>'
        f'</S:Header>'
        f'<S:Body><S:Fault><S:Code><S:Value>S:Sender</S:Value><S:Subcode>'
        f'<S:Value>wst:FailedAuthentication</S:Value></S:Subcode></S:Code>'
        f'<S:Reason><S:Text xml:lang="en-US">Authentication Failure</S:Text></S:Reason>'
        f'<S:Detail><psf:error xmlns:psf="{NS_PSF}"><psf:value>{value}</psf:value>'
        f'<psf:internalerror><psf:code>{code}</psf:code><psf:text>{escape(text)}</psf:text>'
        f'</psf:internalerror></psf:error></S:Detail></S:Fault></S:Body></S:Envelope>')


def sts_token_response(*, token: str, applies_to: str, created: str, expires: str, ts_created: str,
                       ts_expires: str) -> str:
    """A RequestSecurityTokenResponse carrying the compact ``t=...&p=`` service token."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<S:Envelope {_envelope_ns()}>'
        f'<S:Header>'
        f'<wsa:Action S:mustUnderstand="1" wsu:Id="Action">{NS_WST}/RSTR/Issue</wsa:Action>'
        f'<wsa:To S:mustUnderstand="1" wsu:Id="To">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/'
        f'anonymous</wsa:To>'
        f'<wsse:Security S:mustUnderstand="1"><wsu:Timestamp wsu:Id="TS"><wsu:Created>{ts_created}'
        f'</wsu:Created><wsu:Expires>{ts_expires}</wsu:Expires></wsu:Timestamp></wsse:Security>'
        f'</S:Header>'
        f'<S:Body><wst:RequestSecurityTokenResponse>'
        f'<wst:TokenType>urn:passport:compact</wst:TokenType>'
        f'<wsp:AppliesTo><wsa:EndpointReference><wsa:Address>{escape(applies_to)}</wsa:Address>'
        f'</wsa:EndpointReference></wsp:AppliesTo>'
        f'<wst:Lifetime><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires></wst:Lifetime>'
        f'<wst:RequestedSecurityToken><wsse:BinarySecurityToken Id="Compact0">'
        f'{escape(token)}</wsse:BinarySecurityToken></wst:RequestedSecurityToken>'
        f'</wst:RequestSecurityTokenResponse></S:Body></S:Envelope>')
