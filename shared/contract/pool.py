"""The account pool on the wire: members, leases and their release (with a throttling report)."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from pydantic import Field

from shared.contract.base import Guid, RequestModel, ResponseModel, whole_numbers
from shared.contract.profiles import LastValidation
from shared.domain.pool import MAX_LEASE_SECONDS, MAX_MEMBERS, MAX_REST_SECONDS


class PoolPut(RequestModel):
    members: list[Guid] = Field(max_length=MAX_MEMBERS, description="MFA profile ids of this tenant")


class LeaseRequest(RequestModel):
    lease_seconds: Optional[int] = Field(default=None, ge=1, le=MAX_LEASE_SECONDS)
    _whole = whole_numbers("lease_seconds")


class ReleaseRequest(RequestModel):
    retry_after_seconds: Optional[int] = Field(
        default=None, ge=0, le=MAX_REST_SECONDS, description="SharePoint throttled this account: rest it this long.")
    _whole = whole_numbers("retry_after_seconds")


class PoolMember(ResponseModel):
    profile_id: Guid
    username: Optional[str]
    exists: bool
    healthy: bool
    last_validation: Optional[LastValidation]
    leased: bool
    leased_until: Optional[datetime]
    resting: bool
    rest_until: Optional[datetime]
    last_leased_at: Optional[datetime]
    throttle_reports: int


class Pool(ResponseModel):
    tenant_id: Guid
    members: list[PoolMember]


class SecretRef(ResponseModel):
    vault_uri: str
    name: str
    version: str


class Lease(ResponseModel):
    """Never the password: a caller with Key Vault access reads it by ``secretRef``."""

    lease_id: Guid
    profile_id: Guid
    username: str
    secret_ref: Optional[SecretRef]
    expires_at: datetime


class Release(ResponseModel):
    lease_id: Guid
    profile_id: Guid
    rest_until: Optional[datetime]
