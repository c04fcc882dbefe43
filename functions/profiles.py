"""Service-account profiles over HTTP: /api/tenants/{tenantId}/profiles[/{profileId}]."""
from __future__ import annotations

from urllib.parse import urlencode

import azure.functions as func

from functions._http import body, json_response, operation, path_id, query, tenant_id
from shared.bootstrap import services
from shared.contract.profiles import ListProfilesQuery, ProfileCreate, ProfilePage, ProfilePatch, profile_out

bp = func.Blueprint()


@operation(bp, "createProfile")
def create_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, form = tenant_id(req), body(req, ProfileCreate).to_input()
    view = services().profiles.create_profile(tenant, form, correlation_id=cid)
    return json_response(profile_out(view), cid, status=201, etag=view.profile.etag,
                         headers={"Location": f"/api/tenants/{tenant}/profiles/{view.profile.id}"})


@operation(bp, "listProfiles")
def list_profiles(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, q = tenant_id(req), query(req, ListProfilesQuery)
    views, token = services().profiles.list_profiles(tenant, kind=q.kind, last_status=q.last_status,
                                                     page_size=q.page_size, continuation_token=q.continuation_token)
    next_link = None
    if token:
        params = {"kind": q.kind, "lastStatus": q.last_status, "pageSize": q.page_size, "continuationToken": token}
        next_link = f"/api/tenants/{tenant}/profiles?{urlencode({k: v for k, v in params.items() if v})}"
    return json_response(ProfilePage(items=[profile_out(v) for v in views], continuation_token=token,
                                     next_link=next_link), cid)


@operation(bp, "getProfile")
def get_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    view = services().profiles.get_profile(tenant_id(req), path_id(req, "profileId"))
    return json_response(profile_out(view), cid, etag=view.profile.etag)


@operation(bp, "patchProfile")
def patch_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, profile_id, changes = tenant_id(req), path_id(req, "profileId"), body(req, ProfilePatch).changes()
    view = services().profiles.patch_profile(tenant, profile_id, changes, if_match=req.headers.get("if-match"),
                                             correlation_id=cid)
    return json_response(profile_out(view), cid, etag=view.profile.etag)


@operation(bp, "deleteProfile")
def delete_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    services().profiles.delete_profile(tenant_id(req), path_id(req, "profileId"),
                                       if_match=req.headers.get("if-match"), correlation_id=cid)
    return func.HttpResponse(status_code=204, headers={"x-correlation-id": cid})
