"""The one place that reads app settings.

The Functions host (Azure or ``devtools.local_host``) exposes app settings as environment
variables. Every setting the application reads is declared in :data:`SETTINGS` with its meaning
and local default; ``local.settings.sample.json``, the Bicep app settings and the README table are
checked against this list by ``tests/unit/test_consistency.py``.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Setting:
    name: str
    meaning: str
    default: str | None = None
    #: True when only the local cloud uses it (absent from the Azure deployment).
    local_only: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("AzureWebJobsStorage",
            "Storage connection for queues and tables (Azurite locally). In Azure the identity-based "
            "form AzureWebJobsStorage__accountName / __credential / __clientId is used instead.",
            local_only=True),
    Setting("AzureWebJobsStorage__accountName",
            "Storage account name for identity-based connections (Azure)."),
    Setting("AzureWebJobsStorage__tableServiceUri",
            "Table endpoint for identity-based connections (Azure; carries the cloud's storage suffix)."),
    Setting("AzureWebJobsStorage__queueServiceUri",
            "Queue endpoint for identity-based connections (Azure; carries the cloud's storage suffix)."),
    Setting("AzureWebJobsStorage__credential", "'managedidentity' in Azure."),
    Setting("AzureWebJobsStorage__clientId", "Client id of the user-assigned managed identity."),
    Setting("KEY_VAULT_URI", "Key Vault that holds app passwords and webhook secrets.",
            "https://demo.vault.azure.net/"),
    Setting("M365_CLOUD", "Microsoft cloud: public | usgov | china | local (the simulator).", "public"),
    Setting("M365_CLIENT_ID",
            "Public client application id used for the modern (ROPC) sign-in of service accounts.",
            "1950a258-227b-4e31-a9cf-717495945fc2"),
    Setting("LOCAL_CLOUD_ENDPOINT",
            "local cloud only: host:port where Microsoft host names resolve (the simulator).",
            "127.0.0.1:8443", local_only=True),
    Setting("LOCAL_CLOUD_CA_BUNDLE",
            "local cloud only: PEM bundle of the simulator's CA.", ".local/m365sim/ca.pem",
            local_only=True),
    Setting("AZURE_TENANT_ID", "Tenant of the app's own identity (local cloud: the simulator's).",
            local_only=True),
    Setting("AZURE_CLIENT_ID",
            "Client id of the app's own identity: the user-assigned managed identity in Azure."),
    Setting("AZURE_CLIENT_SECRET", "local cloud only: secret of the app's simulator identity.",
            local_only=True),
    Setting("RESERVED_IP_RANGES",
            "Comma-separated CIDR ranges the service signs in from (spec: reserved IP addresses). "
            "Required outside the local cloud."),
    Setting("UPSTREAM_TIMEOUT_SECONDS", "Timeout of every call to Entra, SharePoint, Graph.", "10"),
    Setting("REVALIDATION_SCHEDULE", "NCRONTAB (6 fields) of scheduled revalidation.", "0 0 2 * * *"),
    Setting("REVALIDATION_MAX_AGE_HOURS",
            "Scheduled revalidation re-checks profiles last validated longer ago than this (0: all).",
            "24"),
    Setting("REVALIDATION_SPREAD_MINUTES",
            "Scheduled revalidation releases its work messages evenly over this many minutes.", "60"),
    Setting("WEBHOOK_REPLAY_WINDOW_SECONDS", "Accepted age of a signed webhook's timestamp.", "300"),
    Setting("POOL_LEASE_SECONDS", "Default lease time of an account-pool member.", "300"),
    Setting("VALIDATION_DEADLINE_SECONDS",
            "Overall deadline of one Validation Test, shared by all its upstream and Key Vault calls; past it "
            "the outcome is SERVICE_UNAVAILABLE with the steps reached.", "25"),
    Setting("APP_CERTIFICATE_SUBJECT",
            "Subject of the certificates Key Vault generates for app profiles (non-exportable keys).",
            "CN=m365-service-account-profiles"),
    Setting("APP_CERTIFICATE_VALIDITY_MONTHS",
            "Validity of the certificates Key Vault generates for app profiles.", "12"),
    Setting("EXPLANATION_FIRST_LOOK_SECONDS",
            "Seconds after a failed test before the tenant's sign-in log is first searched for the blocking policy "
            "(then doubling, up to 5 minutes).", "60"),
    Setting("EXPLANATION_MAX_WAIT_MINUTES",
            "How long after a test its sign-in log entry is waited for; then the explanation says it never came.",
            "30"),
    Setting("HTTP_VALIDATION_THREAD_COUNT",
            "Threads per worker process for the Validation Tests an admin waits for (validateProfile, "
            "validationTest), apart from the worker's own pool (shared/executors.py).", "16"),
    Setting("QUEUE_VALIDATION_THREAD_COUNT",
            "Threads per worker process for queued Validation Tests (one per profile of the work groups in flight).",
            "24"),
    Setting("WEBHOOK_PORTALS",
            "Portals allowed to send signed webhooks and the tenants each may act for: "
            "'portal=tenantId|tenantId;other=*' ('*': every tenant). Any other portal is refused "
            "without a Key Vault read; empty: none."),
    Setting("APPLICATIONINSIGHTS_CONNECTION_STRING",
            "Application Insights to export traces to (Azure Monitor exporter, Entra authentication with "
            "the app's managed identity; shared/telemetry.py). Also read by the Functions host. Empty: no "
            "Azure Monitor export."),
    Setting("OTEL_TRACES_EXPORTER",
            "Other trace export: 'console' (spans printed to stdout) or 'none'.", "none"),
)

_BY_NAME = {s.name: s for s in SETTINGS}
CLOUDS = ("public", "usgov", "china", "local")


class ConfigurationError(ValueError):
    """A setting is missing or malformed; the message names it."""


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value == "":
        return _BY_NAME[name].default
    return value


def setting(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """One declared setting's value (its default when unset), for code that runs before or
    without :class:`Settings` (e.g. the executors sized at the first trigger)."""
    return _get(os.environ if env is None else env, name)


def _int(env: Mapping[str, str], name: str) -> int:
    raw = _get(env, name)
    try:
        return int(raw or "")
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None


def parse_cidrs(raw: str, *, setting: str = "RESERVED_IP_RANGES") -> tuple[str, ...]:
    ranges = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            ranges.append(str(ipaddress.ip_network(part, strict=True)))
        except ValueError as exc:
            raise ConfigurationError(f"{setting}: {part!r} is not a CIDR range ({exc})") from None
    return tuple(ranges)


_PORTAL = re.compile(r"[A-Za-z0-9-]{1,64}")
_TENANT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def parse_portals(raw: str, *, setting: str = "WEBHOOK_PORTALS") -> dict[str, frozenset[str] | None]:
    """``portal=tenant|tenant;other=*`` → ``{"portal": frozenset({...}), "other": None}``."""
    portals: dict[str, frozenset[str] | None] = {}
    for entry in (e.strip() for e in raw.split(";")):
        if not entry:
            continue
        portal, sep, tenants = (p.strip() for p in entry.partition("="))
        ids = [t.strip() for t in tenants.split("|") if t.strip()]
        if not sep or not _PORTAL.fullmatch(portal) or not ids or \
                not (ids == ["*"] or all(_TENANT.fullmatch(t) for t in ids)):
            raise ConfigurationError(f"{setting}: {entry!r} is not portal=tenantId|tenantId or portal=*")
        portals[portal] = None if ids == ["*"] else frozenset(t.lower() for t in ids)
    return portals


#: The local cloud's egress ranges when none are configured (documentation ranges, RFC 5737).
LOCAL_RESERVED_IP_RANGES = "203.0.113.0/28,198.51.100.16/29"


def _reserved_ranges(env: Mapping[str, str], cloud: str) -> tuple[str, ...]:
    raw = _get(env, "RESERVED_IP_RANGES") or (LOCAL_RESERVED_IP_RANGES if cloud == "local" else "")
    ranges = parse_cidrs(raw)
    if not ranges:
        raise ConfigurationError("RESERVED_IP_RANGES must list the service's egress CIDR ranges")
    return ranges


def _traces_exporter(env: Mapping[str, str]) -> str:
    value = (_get(env, "OTEL_TRACES_EXPORTER") or "none").strip().lower()
    if value not in ("none", "console"):
        raise ConfigurationError(f"OTEL_TRACES_EXPORTER must be 'console' or 'none', got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    storage_connection_string: str | None
    storage_account_name: str | None
    storage_client_id: str | None
    table_service_uri: str | None
    queue_service_uri: str | None
    key_vault_uri: str
    cloud: str
    m365_client_id: str
    local_cloud_endpoint: str
    local_cloud_ca_bundle: str
    azure_tenant_id: str | None
    azure_client_id: str | None
    azure_client_secret: str | None = field(repr=False, default=None)
    reserved_ip_ranges: tuple[str, ...] = ()
    upstream_timeout: float = 10.0
    revalidation_schedule: str = "0 0 2 * * *"
    revalidation_max_age_hours: int = 24
    revalidation_spread_minutes: int = 60
    webhook_replay_window_seconds: int = 300
    pool_lease_seconds: int = 300
    validation_deadline: float = 25.0
    app_certificate_subject: str = "CN=m365-service-account-profiles"
    app_certificate_validity_months: int = 12
    explanation_first_look_seconds: int = 60
    explanation_max_wait_minutes: int = 30
    #: portal id → the tenants it may act for (None: every tenant).
    webhook_portals: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    #: Traces to Azure Monitor when set; ``traces_exporter``: "console" or "none" (shared/telemetry.py).
    applicationinsights_connection_string: str | None = field(repr=False, default=None)
    traces_exporter: str = "none"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        cloud = (_get(env, "M365_CLOUD") or "public").lower()
        if cloud not in CLOUDS:
            raise ConfigurationError(f"M365_CLOUD must be one of {', '.join(CLOUDS)}, got {cloud!r}")
        conn = _get(env, "AzureWebJobsStorage")
        account = _get(env, "AzureWebJobsStorage__accountName")
        if not conn and not account:
            raise ConfigurationError(
                "Set AzureWebJobsStorage (connection string) or AzureWebJobsStorage__accountName")
        return cls(
            storage_connection_string=conn,
            storage_account_name=account,
            storage_client_id=_get(env, "AzureWebJobsStorage__clientId"),
            table_service_uri=_get(env, "AzureWebJobsStorage__tableServiceUri"),
            queue_service_uri=_get(env, "AzureWebJobsStorage__queueServiceUri"),
            key_vault_uri=_get(env, "KEY_VAULT_URI") or "",
            cloud=cloud,
            m365_client_id=_get(env, "M365_CLIENT_ID") or "",
            local_cloud_endpoint=_get(env, "LOCAL_CLOUD_ENDPOINT") or "",
            local_cloud_ca_bundle=_get(env, "LOCAL_CLOUD_CA_BUNDLE") or "",
            azure_tenant_id=_get(env, "AZURE_TENANT_ID"),
            azure_client_id=_get(env, "AZURE_CLIENT_ID"),
            azure_client_secret=_get(env, "AZURE_CLIENT_SECRET"),
            reserved_ip_ranges=_reserved_ranges(env, cloud),
            upstream_timeout=float(_int(env, "UPSTREAM_TIMEOUT_SECONDS")),
            revalidation_schedule=_get(env, "REVALIDATION_SCHEDULE") or "",
            revalidation_max_age_hours=_int(env, "REVALIDATION_MAX_AGE_HOURS"),
            revalidation_spread_minutes=_int(env, "REVALIDATION_SPREAD_MINUTES"),
            webhook_replay_window_seconds=_int(env, "WEBHOOK_REPLAY_WINDOW_SECONDS"),
            app_certificate_subject=_get(env, "APP_CERTIFICATE_SUBJECT") or "",
            app_certificate_validity_months=_int(env, "APP_CERTIFICATE_VALIDITY_MONTHS"),
            explanation_first_look_seconds=_int(env, "EXPLANATION_FIRST_LOOK_SECONDS"),
            explanation_max_wait_minutes=_int(env, "EXPLANATION_MAX_WAIT_MINUTES"),
            pool_lease_seconds=_int(env, "POOL_LEASE_SECONDS"),
            validation_deadline=float(_int(env, "VALIDATION_DEADLINE_SECONDS")),
            webhook_portals=parse_portals(_get(env, "WEBHOOK_PORTALS") or ""),
            applicationinsights_connection_string=_get(env, "APPLICATIONINSIGHTS_CONNECTION_STRING"),
            traces_exporter=_traces_exporter(env),
        )
