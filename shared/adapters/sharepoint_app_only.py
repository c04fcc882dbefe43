"""App profiles' resource probes with app-only tokens: :class:`SharePointAppOnly`.

* ``sitesRoot``: Microsoft Graph ``GET /v1.0/sites/root`` with the Graph token, which names the
  tenant's SharePoint Online host (``siteCollection.hostname``). Graph's error JSON becomes
  ``GRAPH_UNAUTHORIZED`` (401), ``GRAPH_FORBIDDEN`` (403: no Sites role) or the HTTP status alone.
* ``appOnlyWeb``: SharePoint app-only REST ``GET {sharepointUrl}/_api/web`` with the SharePoint
  token (``Accept: application/json;odata=nometadata``). 401 ``Unsupported app only token`` (a token
  got with a client secret) is ``SP_APP_ONLY_REFUSED``, any other 401 ``SP_UNAUTHORIZED``, 403
  ``SP_FORBIDDEN``, 404 ``SP_NOT_FOUND``; 429/503 keep their status and ``Retry-After``.

One request each, on the probes' :class:`~shared.adapters.upstream_http.UpstreamHttp` (timeout,
deadline, correlation id as ``client-request-id``, no redirects, no cookies). The token travels only
in the ``Authorization`` header of that request; error texts kept are the upstream's first line.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests

from shared.adapters.upstream_http import Exchange, UpstreamHttp, first_line, json_object
from shared.domain.probes import Grant, ProbeResult

_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_UNSUPPORTED_APP_ONLY = "unsupported app only token"
_NOMETADATA = "application/json;odata=nometadata"


class SharePointAppOnly:
    """:param UpstreamHttp http: the probes' recorded HTTP. :param str graph_url: ``https://{graph_host}``."""

    def __init__(self, http: UpstreamHttp, *, graph_url: str):
        self._http = http
        self._graph = graph_url

    def sharepoint_root(self, grant: Grant, *, correlation_id: str) -> ProbeResult:
        """``GET /v1.0/sites/root``: 1 request; ``url`` = ``https://{siteCollection.hostname}``."""
        with self._http.exchange(correlation_id, step="sitesRoot") as ex:
            try:
                resp = self._http.request("GET", f"{self._graph}/v1.0/sites/root?$select=siteCollection,webUrl",
                                          headers={"Authorization": f"Bearer {grant.reveal()}",
                                                   "Accept": "application/json"})
            except Exception as exc:  # noqa: BLE001 - transport errors become data
                return ex.from_exception(exc)
            if resp.status_code != 200:
                return _graph_failure(ex, resp)
            body = json_object(resp.text) or {}
            host = str((body.get("siteCollection") or {}).get("hostname") or "").lower()
            if not host and isinstance(body.get("webUrl"), str):
                host = (urlsplit(body["webUrl"]).hostname or "").lower()
            if not _HOST.match(host):
                return ex.failed("PROBE_FAILURE", "Graph named no SharePoint host for the root site")
            return ex.ok(url=f"https://{host}")

    def check_web(self, grant: Grant, sharepoint_url: str, *, correlation_id: str) -> ProbeResult:
        """``GET {sharepoint_url}/_api/web``: 1 request."""
        url = f"{sharepoint_url.rstrip('/')}/_api/web?$select=Title,Url"
        with self._http.exchange(correlation_id, step="appOnlyWeb") as ex:
            try:
                resp = self._http.request("GET", url, headers={"Authorization": f"Bearer {grant.reveal()}",
                                                               "Accept": _NOMETADATA})
            except Exception as exc:  # noqa: BLE001 - transport errors become data
                return ex.from_exception(exc)
            if resp.status_code == 200:
                if json_object(resp.text) is None:
                    return ex.failed("PROBE_FAILURE", "SharePoint's answer to /_api/web is not JSON")
                return ex.ok()
            return _sharepoint_failure(ex, resp)


def _graph_failure(ex: Exchange, resp: requests.Response) -> ProbeResult:
    error = (json_object(resp.text) or {}).get("error") or {}
    code = {401: "GRAPH_UNAUTHORIZED", 403: "GRAPH_FORBIDDEN"}.get(resp.status_code)
    description = f"{error.get('code', 'HTTP ' + str(resp.status_code))}: {error.get('message', '')}".strip(": ")
    return ex.failed(code, first_line(description))


def _sharepoint_failure(ex: Exchange, resp: requests.Response) -> ProbeResult:
    body = json_object(resp.text) or {}
    odata = body.get("odata.error") or body.get("error") or {}
    message = odata.get("message") if isinstance(odata, dict) else None
    description = (body.get("error_description") if isinstance(body.get("error_description"), str)
                   else (message.get("value") if isinstance(message, dict) else message))
    description = first_line(str(description)) if description else f"HTTP {resp.status_code}"
    code = {401: "SP_UNAUTHORIZED", 403: "SP_FORBIDDEN", 404: "SP_NOT_FOUND"}.get(resp.status_code)
    if resp.status_code == 401 and _UNSUPPORTED_APP_ONLY in description.lower():
        code = "SP_APP_ONLY_REFUSED"
    elif code is None and resp.status_code != 429 and resp.status_code < 500:
        code = "PROBE_FAILURE"  # a redirect or an odd status: not an answer of SharePoint's REST API
    return ex.failed(code, description)
