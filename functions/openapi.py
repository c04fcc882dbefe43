"""GET /api/openapi.json: the OpenAPI 3.1 document of every route."""
import azure.functions as func

from functions._http import ALL_PROBLEM_TYPES, http_endpoint, json_response
from shared.openapi import document

bp = func.Blueprint()


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@http_endpoint
def openapi(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return json_response(document(ALL_PROBLEM_TYPES), cid)
