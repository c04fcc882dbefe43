"""POST /api/webhooks/admin-portal: signed CloudEvents from admin portals (see shared.services.webhooks)."""
import azure.functions as func

from functions._http import json_response, operation, raw_body
from shared.bootstrap import services
from shared.contract.misc import WebhookResult

bp = func.Blueprint()


@operation(bp, "adminPortalWebhook")
def admin_portal_webhook(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    result = services().webhooks.receive(dict(req.headers), raw_body(req), correlation_id=cid)
    return json_response(WebhookResult.model_validate(result), cid, status=200 if result["duplicate"] else 202)
