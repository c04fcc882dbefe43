"""Service-account profiles over HTTP: /api/tenants/{tenantId}/profiles[/{profileId}]."""
from __future__ import annotations

from urllib.parse import urlencode

import azure.functions as func

from functions._http import http_endpoint, json_body, json_response, tenant_id
from shared import bootstrap
from shared.domain.errors import FieldError, InvalidInput

bp = func.Blueprint()

PROFILES = "tenants/{tenantId}/profiles"
PROFILE = "tenants/{tenantId}/profiles/{profileId}"
KINDS = ("mfa", "common")
STATUSES = ("passed", "failed", "error", "never")


def _list_params(req: func.HttpRequest) -> dict:
    errors: list[FieldError] = []
    kind = req.params.get("kind") or None
    if kind and kind not in KINDS:
        errors.append(FieldError("kind", "enum", f"Must be one of {', '.join(KINDS)}."))
    status = req.params.get("lastStatus") or None
    if status and status not in STATUSES:
        errors.append(FieldError("lastStatus", "enum", f"Must be one of {', '.join(STATUSES)}."))
    size_raw = req.params.get("pageSize") or "50"
    size = int(size_raw) if size_raw.isdigit() else 0
    if not 1 <= size <= 200:
        errors.append(FieldError("pageSize", "range", "Must be a whole number from 1 to 200."))
    if errors:
        raise InvalidInput(errors, "The query has invalid parameters.")
    return {"kind": kind, "last_status": status, "page_size": size,
            "continuation_token": req.params.get("continuationToken") or None}


def _profile_id(req: func.HttpRequest) -> str:
    return req.route_params.get("profileId", "").lower()


@bp.route(route=PROFILES, methods=["POST"])
@http_endpoint
def create_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant = tenant_id(req)
    services = bootstrap.deps().profile_services
    profile = services.create_profile(tenant, json_body(req), correlation_id=cid)
    return json_response(services.to_json(profile), cid, status=201, etag=profile.etag,
                         headers={"Location": f"/api/{PROFILES}/{profile.id}".replace("{tenantId}", tenant)})


@bp.route(route=PROFILES, methods=["GET"])
@http_endpoint
def list_profiles(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant = tenant_id(req)
    params = _list_params(req)
    services = bootstrap.deps().profile_services
    page = services.list_profiles(tenant, **params)
    body = {"items": [services.to_json(p) for p in page.items], "continuationToken": page.continuation_token,
            "nextLink": None}
    if page.continuation_token:
        query = {k: v for k, v in (("kind", params["kind"]), ("lastStatus", params["last_status"]),
                                   ("pageSize", params["page_size"]),
                                   ("continuationToken", page.continuation_token)) if v}
        body["nextLink"] = f"/api/tenants/{tenant}/profiles?{urlencode(query)}"
    return json_response(body, cid)


@bp.route(route=PROFILE, methods=["GET"])
@http_endpoint
def get_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    services = bootstrap.deps().profile_services
    profile = services.get_profile(tenant_id(req), _profile_id(req))
    return json_response(services.to_json(profile), cid, etag=profile.etag)


@bp.route(route=PROFILE, methods=["PATCH"])
@http_endpoint
def patch_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant = tenant_id(req)
    services = bootstrap.deps().profile_services
    patch = json_body(req)
    profile = services.patch_profile(tenant, _profile_id(req), patch, if_match=req.headers.get("if-match"),
                                     correlation_id=cid)
    return json_response(services.to_json(profile), cid, etag=profile.etag)


@bp.route(route=PROFILE, methods=["DELETE"])
@http_endpoint
def delete_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    services = bootstrap.deps().profile_services
    services.delete_profile(tenant_id(req), _profile_id(req), if_match=req.headers.get("if-match"),
                            correlation_id=cid)
    return func.HttpResponse(status_code=204, headers={"x-correlation-id": cid})
