"""POST /api/webhooks/admin-portal: signed CloudEvents from admin portals (see shared.services.webhooks)."""
import azure.functions as func

from functions._http import http_endpoint, json_response
from shared import bootstrap

bp = func.Blueprint()


@bp.route(route="webhooks/admin-portal", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def admin_portal_webhook(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    result = bootstrap.deps().webhook_receiver.receive(dict(req.headers), req.get_body(), correlation_id=cid)
    return json_response(result, cid, status=200 if result["duplicate"] else 202)
