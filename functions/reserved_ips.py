"""GET /api/reserved-ip-addresses: the service's egress ranges to exclude from access policies (spec Message 1)."""
import csv
import io

import azure.functions as func

from functions._http import http_endpoint, json_response
from shared import bootstrap

bp = func.Blueprint()
PURPOSE = ("Sign-ins of the Validation Test and of the service come from these addresses. Exclude them from "
           "Conditional Access policies that block the service account (Message 1).")


@bp.route(route="reserved-ip-addresses", methods=["GET"])
@http_endpoint
def reserved_ip_addresses(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    ranges = bootstrap.deps().settings.reserved_ip_ranges
    wants_csv = req.params.get("format") == "csv" or "text/csv" in (req.headers.get("accept") or "")
    if not wants_csv:
        return json_response({"purpose": PURPOSE, "ranges": [{"cidr": r, "version": 6 if ":" in r else 4}
                                                             for r in ranges]}, cid)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["cidr", "ipVersion"])
    writer.writerows([r, 6 if ":" in r else 4] for r in ranges)
    return func.HttpResponse(out.getvalue(), status_code=200, mimetype="text/csv", charset="utf-8", headers={
        "Content-Disposition": 'attachment; filename="reserved-ip-addresses.csv"', "x-correlation-id": cid})
