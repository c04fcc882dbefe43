"""GET /api/health: reachability of Table Storage, Queue Storage and Key Vault (503 when one is down)."""
import azure.functions as func

from functions._http import http_endpoint, json_response
from shared import bootstrap
from shared.services.health import check_health

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def health(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    report = check_health(bootstrap.deps())
    return json_response(report, cid, status=200 if report["status"] == "healthy" else 503)
