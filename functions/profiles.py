"""Service-account profiles over HTTP: /api/tenants/{tenantId}/profiles[/{profileId}]."""
from __future__ import annotations

from urllib.parse import urlencode

import azure.functions as func

from functions._http import body, json_response, operation, path_id, query, tenant_id
from shared.bootstrap import services
from shared.contract.profiles import (AppProfileCreate, CertificateIn, ListProfilesQuery, MigrateRequest,
                                     MigrationResult, ProfilePage, ProfilePatch, certificate_url, parse_profile_create,
                                     profile_out, required_permissions_out)
from shared.domain.profile import APP_GUIDANCE

bp = func.Blueprint()


@operation(bp, "createProfile")
def create_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, request = tenant_id(req), body(req, parse_profile_create)
    if isinstance(request, AppProfileCreate):
        view = services().profiles.create_app_profile(tenant, request.to_input(), correlation_id=cid)
    else:
        view = services().profiles.create_profile(tenant, request.to_input(), correlation_id=cid)
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


@operation(bp, "getProfileCertificate")
def get_profile_certificate(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    profile_id = path_id(req, "profileId")
    cert = services().profiles.get_certificate(tenant_id(req), profile_id)
    der = "application/pkix-cert" in (req.headers.get("accept") or "")
    filename = f"{cert.thumbprint}.{'cer' if der else 'pem'}"
    return func.HttpResponse(cert.cer if der else cert.pem(), status_code=200,
                             mimetype="application/pkix-cert" if der else "application/x-pem-file",
                             headers={"x-correlation-id": cid, "Cache-Control": "no-store",
                                      "Content-Disposition": f'attachment; filename="{filename}"'})


@operation(bp, "rotateProfileCertificate")
def rotate_profile_certificate(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, profile_id = tenant_id(req), path_id(req, "profileId")
    request = body(req, CertificateIn, optional=True)
    view = services().profiles.rotate_certificate(tenant, profile_id, request.source() if request else None,
                                                  if_match=req.headers.get("if-match"), correlation_id=cid)
    return json_response(profile_out(view), cid, etag=view.profile.etag)


@operation(bp, "migrateProfile")
def migrate_profile(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, profile_id, request = tenant_id(req), path_id(req, "profileId"), body(req, MigrateRequest)
    view = services().profiles.migrate_profile(tenant, profile_id, request.to_input,
                                               if_match=req.headers.get("if-match"), correlation_id=cid)
    app = view.profile.app
    result = MigrationResult(profile=profile_out(view), certificate_url=certificate_url(tenant, profile_id),
                             admin_consent_url=view.admin_consent_url or "",
                             required_permissions=required_permissions_out(app.workload),
                             next_steps=list(APP_GUIDANCE))
    return json_response(result, cid, etag=view.profile.etag)
