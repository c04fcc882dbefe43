"""The account pool: /api/tenants/{tenantId}/account-pool[/leases[/{leaseId}]]."""
import azure.functions as func

from functions._http import http_endpoint, json_body, json_response, tenant_id
from shared import bootstrap

bp = func.Blueprint()
POOL = "tenants/{tenantId}/account-pool"


def _optional_body(req: func.HttpRequest):
    return json_body(req) if req.get_body() else None


@bp.route(route=POOL, methods=["GET"])
@http_endpoint
def get_account_pool(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return json_response(bootstrap.deps().pool_services.get_pool(tenant_id(req)), cid)


@bp.route(route=POOL, methods=["PUT"])
@http_endpoint
def put_account_pool(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return json_response(bootstrap.deps().pool_services.put_pool(tenant_id(req), json_body(req)), cid)


@bp.route(route=POOL + "/leases", methods=["POST"])
@http_endpoint
def lease_pool_member(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    lease = bootstrap.deps().pool_services.lease(tenant_id(req), _optional_body(req), correlation_id=cid)
    return json_response(lease, cid, status=201)


@bp.route(route=POOL + "/leases/{leaseId}", methods=["DELETE"])
@http_endpoint
def release_pool_member(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    result = bootstrap.deps().pool_services.release(tenant_id(req), req.route_params.get("leaseId", ""),
                                                    _optional_body(req), correlation_id=cid)
    return json_response(result, cid)
