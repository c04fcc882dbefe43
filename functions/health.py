"""GET /api/health: reachability of Table Storage, Queue Storage and Key Vault (503 when one is down)."""
import azure.functions as func

from functions._http import json_response, operation
from shared.bootstrap import services
from shared.contract.misc import Health

bp = func.Blueprint()


@operation(bp, "health")
def health(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    report = services().health.check()
    return json_response(Health.model_validate(report), cid, status=200 if report.healthy else 503)
