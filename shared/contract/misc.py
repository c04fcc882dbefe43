"""Health, reserved IP addresses, webhooks and problems on the wire."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from shared.contract.base import RequestModel, ResponseModel, literal_of
from shared.domain.events import PORTAL_EVENT_TYPES


class Dependency(ResponseModel):
    status: Literal["up", "down"]
    latency_ms: float
    error: Optional[str] = None


class Health(ResponseModel):
    status: Literal["healthy", "unhealthy"]
    dependencies: dict[str, Dependency]


class ReservedIpQuery(RequestModel):
    model_config = {"strict": False, "extra": "ignore"}

    format: Optional[Literal["json", "csv"]] = Field(default=None, description="csv: a download (or Accept: text/csv)")


class IpRange(ResponseModel):
    cidr: str
    version: Literal[4, 6]


class ReservedIpAddresses(ResponseModel):
    purpose: str
    ranges: list[IpRange]


class CloudEvent(RequestModel):
    """A CloudEvent 1.0 in structured JSON mode (checked by the CloudEvents SDK after the signature)."""

    model_config = {"extra": "allow"}

    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: literal_of(PORTAL_EVENT_TYPES)  # type: ignore[valid-type]
    data: dict[str, Any]


class WebhookResult(ResponseModel):
    event_id: str
    type: str
    duplicate: bool
    result: Optional[dict[str, Any]] = None


class FieldProblem(ResponseModel):
    field: str = Field(description="Dotted path of the field ('' for the whole body)")
    code: str
    detail: str


class Problem(ResponseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: Optional[str] = None
    correlation_id: str
    retry_after_seconds: Optional[int] = None
    errors: Optional[list[FieldProblem]] = None
