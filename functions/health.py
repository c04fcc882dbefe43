"""GET /api/health: reachability of Table Storage, Queue Storage and Key Vault."""
import json

import azure.functions as func

bp = func.Blueprint()


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared import bootstrap
    from shared.services.health import check_health

    report = check_health(bootstrap.deps())
    return func.HttpResponse(json.dumps(report), status_code=200 if report["status"] == "healthy" else 503,
                             mimetype="application/json")
