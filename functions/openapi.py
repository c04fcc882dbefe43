"""GET /api/openapi.json: the OpenAPI 3.1 document, generated from the contract's models and routes."""
import azure.functions as func

from functions._http import json_response, operation
from shared.contract.openapi import document

bp = func.Blueprint()


@operation(bp, "openapi")
def openapi(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return json_response(document(), cid)
