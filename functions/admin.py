"""GET /api/admin: the admin page (the spec's profile form, Validation Test and troubleshooting)."""
from pathlib import Path

import azure.functions as func

from functions._http import operation

bp = func.Blueprint()
PAGE = Path(__file__).with_name("static") / "admin.html"
CSP = "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'"


@operation(bp, "adminPage")
def admin_page(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return func.HttpResponse(PAGE.read_bytes(), status_code=200, mimetype="text/html", charset="utf-8",
                             headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                      "x-correlation-id": cid})
