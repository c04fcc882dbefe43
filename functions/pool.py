"""The account pool: /api/tenants/{tenantId}/account-pool[/leases[/{leaseId}]]."""
import azure.functions as func

from functions._http import body, json_response, operation, path_id, tenant_id
from shared.bootstrap import services
from shared.contract.pool import Lease, LeaseRequest, Pool, PoolPut, Release, ReleaseRequest

bp = func.Blueprint()


@operation(bp, "getAccountPool")
def get_account_pool(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return json_response(Pool.model_validate(services().pool.get_pool(tenant_id(req))), cid)


@operation(bp, "putAccountPool")
def put_account_pool(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, members = tenant_id(req), body(req, PoolPut).members
    return json_response(Pool.model_validate(services().pool.put_pool(tenant, members)), cid)


@operation(bp, "leasePoolMember")
def lease_pool_member(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, request = tenant_id(req), body(req, LeaseRequest, optional=True) or LeaseRequest()
    lease = services().pool.lease(tenant, lease_seconds=request.lease_seconds, correlation_id=cid)
    return json_response(Lease.model_validate(lease), cid, status=201)


@operation(bp, "releasePoolMember")
def release_pool_member(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    tenant, lease_id = tenant_id(req), path_id(req, "leaseId")
    request = body(req, ReleaseRequest, optional=True) or ReleaseRequest()
    released = services().pool.release(tenant, lease_id, retry_after_seconds=request.retry_after_seconds,
                                       correlation_id=cid)
    return json_response(Release.model_validate(released), cid)
