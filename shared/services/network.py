"""The service's reserved egress addresses (spec Message 1: exclude them from access policies)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

PURPOSE = ("Sign-ins of the Validation Test and of the service come from these addresses. Exclude them from "
           "Conditional Access policies that block the service account (Message 1).")


@dataclass(frozen=True)
class IpRange:
    cidr: str

    @property
    def version(self) -> int:
        return 6 if ":" in self.cidr else 4


@dataclass(frozen=True)
class ReservedIpAddresses:
    purpose: str
    ranges: tuple[IpRange, ...]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["cidr", "ipVersion"])
        writer.writerows([r.cidr, r.version] for r in self.ranges)
        return out.getvalue()


@dataclass(frozen=True)
class NetworkService:
    reserved_ip_ranges: tuple[str, ...]

    def reserved_ip_addresses(self) -> ReservedIpAddresses:
        return ReservedIpAddresses(PURPOSE, tuple(IpRange(r) for r in self.reserved_ip_ranges))
