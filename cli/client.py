"""The CLI's HTTP client: the API's base URL and function key, problems as :class:`ApiError`."""
from __future__ import annotations

import logging
import uuid
from typing import Any, Iterator

import requests

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API answered with a problem (RFC 9457) or did not answer at all (``status`` 0)."""

    def __init__(self, status: int, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 correlation_id: str | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.correlation_id = status, detail, errors or [], correlation_id

    def lines(self) -> list[str]:
        head = f"HTTP {self.status}: {self.detail}" if self.status else self.detail
        out = [head] + [f"  {e.get('field') or '(body)'}: {e.get('detail')}" for e in self.errors]
        if self.correlation_id:
            out.append(f"  correlation id: {self.correlation_id}")
        return out


class ProfilesClient:
    """The service's HTTP API (``/api/...``) with the function key in ``x-functions-key``.

    :param str base_url: e.g. ``http://127.0.0.1:7071``
    :param str key: the function key
    """

    def __init__(self, base_url: str, key: str, *, timeout: float = 60):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.session = requests.Session()
        self.session.headers["x-functions-key"] = key
        self.session.headers["user-agent"] = "m365-profiles-cli"

    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs) -> requests.Response:
        cid = "cli-" + uuid.uuid4().hex[:16]
        headers = {"x-correlation-id": cid, **kwargs.pop("headers", {})}
        try:
            response = self.session.request(method, self.base_url + "/api" + path, headers=headers,
                                            timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(0, f"Could not reach {self.base_url}: {exc}") from exc
        if response.status_code not in expect:
            body: dict[str, Any] = {}
            try:
                body = response.json() if response.content else {}
            except ValueError:
                pass
            detail = body.get("detail") or body.get("title") or (
                "the function key was refused" if response.status_code == 401 else response.reason or "error")
            raise ApiError(response.status_code, detail, errors=body.get("errors"),
                           correlation_id=body.get("correlationId") or response.headers.get("x-correlation-id"))
        return response

    def json(self, method: str, path: str, **kwargs) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    # --- profiles -----------------------------------------------------------------------------

    def list_profiles(self, tenant: str, *, kind: str | None = None, last_status: str | None = None,
                      page_size: int = 200) -> Iterator[dict[str, Any]]:
        """Every profile matching the filters, page after page."""
        params: dict[str, Any] = {"pageSize": page_size}
        if kind:
            params["kind"] = kind
        if last_status:
            params["lastStatus"] = last_status
        while True:
            page = self.json("GET", f"/tenants/{tenant}/profiles", params=params)
            yield from page["items"]
            if not page.get("continuationToken"):
                return
            params["continuationToken"] = page["continuationToken"]

    def get_profile(self, tenant: str, profile_id: str) -> dict[str, Any]:
        return self.json("GET", f"/tenants/{tenant}/profiles/{profile_id}")

    def create_profile(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.json("POST", f"/tenants/{tenant}/profiles", json=body, expect=(201,))

    def validate_profile(self, tenant: str, profile_id: str) -> dict[str, Any]:
        return self.json("POST", f"/tenants/{tenant}/profiles/{profile_id}/validate")

    def list_validations(self, tenant: str, profile_id: str) -> dict[str, Any]:
        return self.json("GET", f"/tenants/{tenant}/profiles/{profile_id}/validations")

    # --- jobs ---------------------------------------------------------------------------------

    def start_job(self, tenant: str, selection: dict[str, Any]) -> dict[str, Any]:
        return self.json("POST", f"/tenants/{tenant}/validation-jobs", json=selection, expect=(202,))

    def get_job(self, tenant: str, job_id: str) -> dict[str, Any]:
        return self.json("GET", f"/tenants/{tenant}/validation-jobs/{job_id}")

    # --- pool ---------------------------------------------------------------------------------

    def get_pool(self, tenant: str) -> dict[str, Any]:
        return self.json("GET", f"/tenants/{tenant}/account-pool")

    def put_pool(self, tenant: str, members: list[str]) -> dict[str, Any]:
        return self.json("PUT", f"/tenants/{tenant}/account-pool", json={"members": members})

    def lease(self, tenant: str, lease_seconds: int | None = None) -> dict[str, Any]:
        body = {"leaseSeconds": lease_seconds} if lease_seconds else None
        return self.json("POST", f"/tenants/{tenant}/account-pool/leases", json=body, expect=(201,))

    def release(self, tenant: str, lease_id: str, retry_after_seconds: int | None = None) -> dict[str, Any]:
        body = {"retryAfterSeconds": retry_after_seconds} if retry_after_seconds is not None else None
        return self.json("DELETE", f"/tenants/{tenant}/account-pool/leases/{lease_id}", json=body)

    # --- reserved IP addresses ----------------------------------------------------------------

    def reserved_ip_addresses(self, *, csv: bool = False) -> requests.Response:
        return self.request("GET", "/reserved-ip-addresses", params={"format": "csv" if csv else "json"})
