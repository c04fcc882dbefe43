"""GET /api/admin: the admin page (the spec's profile form, Validation Test and troubleshooting,
profiles list, validation history, batch jobs, account pool), and its static assets.

The page is plain HTML; its script and style sheet are separate files (no inline script or style,
so the CSP allows neither), and ``texts.json`` carries the catalog's message and limitation texts
that the profile list shows and the app profiles' workloads with their required permissions. The assets hold no data and need no key; the page's API calls send
the function key in ``x-functions-key``.
"""
import json
from functools import lru_cache
from pathlib import Path

import azure.functions as func

from functions._http import operation
from shared.domain.app_validation import permission_manifest
from shared.domain.profile import limitation_catalog
from shared.domain.troubleshooting import load_catalog

bp = func.Blueprint()
STATIC = Path(__file__).with_name("static")
PAGE = STATIC / "admin.html"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def _static(body: bytes, mimetype: str, cid: str, *, cache: str = "no-store") -> func.HttpResponse:
    return func.HttpResponse(body, status_code=200, mimetype=mimetype, charset="utf-8",
                             headers={**SECURITY_HEADERS, "Cache-Control": cache, "x-correlation-id": cid})


@operation(bp, "adminPage")
def admin_page(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return _static(PAGE.read_bytes(), "text/html", cid)


@operation(bp, "adminScript")
def admin_script(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return _static((STATIC / "admin.js").read_bytes(), "text/javascript", cid)


@operation(bp, "adminStyles")
def admin_styles(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return _static((STATIC / "admin.css").read_bytes(), "text/css", cid)


@lru_cache(maxsize=1)
def _texts() -> bytes:
    messages = {mid: row["message"] for mid, row in load_catalog().messages.items()}
    limitations = {lid: row["text"] for lid, row in limitation_catalog().items()}
    workloads = {wid: {"description": w.get("description", ""), "graph": list(w.get("graph", ())),
                       "sharepoint": list(w.get("sharepoint", ()))}
                 for wid, w in permission_manifest()["workloads"].items()}
    return json.dumps({"messages": messages, "limitations": limitations, "workloads": workloads}).encode()


@operation(bp, "adminTexts")
def admin_texts(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    return _static(_texts(), "application/json", cid)
