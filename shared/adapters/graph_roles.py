"""The directory roles of the signed-in account from Microsoft Graph: :class:`GraphRoles`.

``GET /v1.0/me/memberOf``, every page (``@odata.nextLink``, at most 50, only on Graph's own host),
keeping the ``#microsoft.graph.directoryRole`` entries. Graph's error JSON becomes
``GRAPH_UNAUTHORIZED`` (401), ``GRAPH_FORBIDDEN`` (403) or the HTTP status alone.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import requests

from shared.adapters.upstream_http import Exchange, UpstreamHttp, first_line, json_object
from shared.domain.probes import Grant, ProbeResult

_DIRECTORY_ROLE = "#microsoft.graph.directoryRole"
_MAX_MEMBER_OF_PAGES = 50


class GraphRoles:
    """The ``memberOf`` step, over the probes' :class:`~shared.adapters.upstream_http.UpstreamHttp`.

    :param UpstreamHttp http: the probe's recorded HTTP.
    :param str graph_url: ``https://{graph_host}`` of the cloud.
    """

    def __init__(self, http: UpstreamHttp, *, graph_url: str):
        self._http = http
        self._graph = graph_url

    def get_roles(self, grant: Grant, *, correlation_id: str) -> ProbeResult:
        """``GET /v1.0/me/memberOf``: 1 request per page."""
        url: str | None = f"{self._graph}/v1.0/me/memberOf"
        templates: list[str] = []
        names: list[str] = []
        with self._http.exchange(correlation_id, step="memberOf") as ex:
            try:
                for _ in range(_MAX_MEMBER_OF_PAGES):
                    resp = self._http.request("GET", url, headers={
                        "Authorization": f"Bearer {grant.reveal()}", "Accept": "application/json"})
                    if resp.status_code != 200:
                        return _graph_failure(ex, resp)
                    body = resp.json()
                    for item in body.get("value", []):
                        if item.get("@odata.type") == _DIRECTORY_ROLE and item.get("roleTemplateId"):
                            templates.append(item["roleTemplateId"])
                            names.append(item.get("displayName") or item["roleTemplateId"])
                    url = body.get("@odata.nextLink")
                    if not url:
                        break
                    if urlsplit(url).netloc.lower() != urlsplit(self._graph).netloc.lower():
                        return ex.failed("PROBE_FAILURE", "Graph's next page link points to another host")
            except Exception as exc:  # noqa: BLE001 - transport errors become data
                return ex.from_exception(exc)
            return ex.ok(role_template_ids=tuple(templates), role_names=tuple(names))


def _graph_failure(ex: Exchange, resp: requests.Response) -> ProbeResult:
    error = (json_object(resp.text) or {}).get("error") or {}
    code = {401: "GRAPH_UNAUTHORIZED", 403: "GRAPH_FORBIDDEN"}.get(resp.status_code)
    description = f"{error.get('code', 'HTTP ' + str(resp.status_code))}: {error.get('message', '')}".strip(": ")
    return ex.failed(code, first_line(description))
