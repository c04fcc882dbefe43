"""GET /api/reserved-ip-addresses: the service's egress ranges to exclude from access policies (spec Message 1)."""
import azure.functions as func

from functions._http import json_response, operation, query
from shared.bootstrap import services
from shared.contract.misc import ReservedIpAddresses, ReservedIpQuery

bp = func.Blueprint()


@operation(bp, "reservedIpAddresses")
def reserved_ip_addresses(req: func.HttpRequest, cid: str) -> func.HttpResponse:
    wanted = query(req, ReservedIpQuery).format
    addresses = services().network.reserved_ip_addresses()
    if wanted == "csv" or (wanted is None and "text/csv" in (req.headers.get("accept") or "")):
        return func.HttpResponse(addresses.to_csv(), status_code=200, mimetype="text/csv", charset="utf-8", headers={
            "Content-Disposition": 'attachment; filename="reserved-ip-addresses.csv"', "x-correlation-id": cid})
    return json_response(ReservedIpAddresses.model_validate(addresses), cid)
