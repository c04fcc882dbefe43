"""The one route table: every HTTP operation, its request and its answers.

The triggers in ``functions/`` are registered from it (:func:`functions._http.operation`), and the
OpenAPI document's paths are generated from it, so a route cannot exist in one and not the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.contract import jobs, misc, pool, profiles, validation
from shared.contract.base import GUID_PATTERN, RequestModel, ResponseModel

JSON = "application/json"
CSV = "text/csv"
HTML = "text/html"
JS = "text/javascript"
CSS = "text/css"


@dataclass(frozen=True)
class Answer:
    description: str
    model: type[ResponseModel] | None = None
    media: str = JSON
    headers: tuple[str, ...] = ()
    #: Other media types of the same answer (a plain string schema, e.g. a CSV download).
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    required: bool = True
    min_length: int = 1


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    #: Route template without the ``api/`` prefix, as the Functions host takes it.
    route: str
    summary: str
    body: type[RequestModel] | None = None
    #: Other bodies the operation takes (a ``oneOf`` with ``body``; the trigger picks by a field).
    body_variants: tuple[type[RequestModel], ...] = ()
    body_media: tuple[str, ...] = (JSON,)
    body_required: bool = True
    query: type[RequestModel] | None = None
    headers: tuple[Header, ...] = ()
    answers: dict[int, Answer] = field(default_factory=dict)
    problems: tuple[int, ...] = ()
    anonymous: bool = False

    @property
    def path(self) -> str:
        return "/api/" + self.route

    def path_params(self) -> list[str]:
        import re

        return re.findall(r"{(\w+)}", self.route)


IF_MATCH = Header("If-Match", "The profile's ETag (428 without it, 412 when stale; * for any version).")
IF_MATCH_OPTIONAL = Header("If-Match", "The profile's ETag (412 when stale; absent or *: any version).", required=False)
PROFILES = "tenants/{tenantId}/profiles"
PROFILE = PROFILES + "/{profileId}"
POOL = "tenants/{tenantId}/account-pool"
JOBS = "tenants/{tenantId}/validation-jobs"
PATCH_MEDIA = ("application/merge-patch+json", JSON)
PEM = "application/x-pem-file"
DER = "application/pkix-cert"

OPERATIONS: tuple[Operation, ...] = (
    Operation("health", "GET", "health", "Reachability of Table Storage, Queue Storage and Key Vault",
              answers={200: Answer("All dependencies reachable", misc.Health),
                       503: Answer("A dependency is down", misc.Health)}, anonymous=True),
    Operation("openapi", "GET", "openapi.json", "This document", answers={200: Answer("OpenAPI 3.1")},
              anonymous=True),
    Operation("adminPage", "GET", "admin", "The admin page (profile form, Validation Test, troubleshooting)",
              answers={200: Answer("The admin page", media=HTML)}, problems=(401,)),
    # The admin page's static assets: code and texts only, no data (the page's API calls carry the key).
    Operation("adminScript", "GET", "admin/admin.js", "The admin page's script",
              answers={200: Answer("JavaScript", media=JS)}, anonymous=True),
    Operation("adminStyles", "GET", "admin/admin.css", "The admin page's style sheet",
              answers={200: Answer("CSS", media=CSS)}, anonymous=True),
    Operation("adminTexts", "GET", "admin/texts.json",
              "The texts the admin page shows: troubleshooting messages by id, profile limitations",
              answers={200: Answer("Message texts by message id, limitation texts by id")}, anonymous=True),
    Operation("createProfile", "POST", PROFILES,
              "Create a service-account profile: the spec's MFA/common form, or an app profile (kind app)",
              body=profiles.ProfileCreate, body_variants=(profiles.AppProfileCreate,),
              answers={201: Answer("Created", profiles.Profile, headers=("ETag", "Location"))},
              problems=(400, 401, 404, 409, 415, 422, 503)),
    Operation("listProfiles", "GET", PROFILES, "A page of the tenant's profiles", query=profiles.ListProfilesQuery,
              answers={200: Answer("A page of profiles", profiles.ProfilePage)}, problems=(401, 404, 422, 503)),
    Operation("getProfile", "GET", PROFILE, "One profile",
              answers={200: Answer("The profile", profiles.Profile, headers=("ETag",))},
              problems=(401, 404, 503)),
    Operation("patchProfile", "PATCH", PROFILE, "Change a profile (JSON Merge Patch)", body=profiles.ProfilePatch,
              body_media=PATCH_MEDIA, headers=(IF_MATCH,),
              answers={200: Answer("Updated", profiles.Profile, headers=("ETag",))},
              problems=(400, 401, 404, 409, 412, 415, 422, 428, 503)),
    Operation("deleteProfile", "DELETE", PROFILE, "Delete a profile (its secret is soft-deleted)",
              headers=(IF_MATCH,), answers={204: Answer("Deleted")}, problems=(401, 404, 412, 428, 503)),
    Operation("getProfileCertificate", "GET", PROFILE + "/certificate",
              "An app profile's public certificate, to upload to the app registration (PEM; DER with "
              "Accept: application/pkix-cert). Never a key: it stays in Key Vault.",
              answers={200: Answer("The certificate", media=PEM, also=(DER,), headers=("Content-Disposition",))},
              problems=(401, 404, 503)),
    Operation("rotateProfileCertificate", "POST", PROFILE + "/certificate",
              "A new certificate version for an app profile (generated by default, or a PFX); the one it "
              "replaces is still accepted until the new one has signed in",
              body=profiles.CertificateIn, body_required=False, headers=(IF_MATCH_OPTIONAL,),
              answers={200: Answer("The profile with its new certificate", profiles.Profile, headers=("ETag",))},
              problems=(400, 401, 404, 412, 415, 422, 503)),
    Operation("migrateProfile", "POST", PROFILE + "/migrate",
              "Turn an MFA or common profile into an app profile; its password is soft-deleted after the first "
              "passed Validation Test", body=profiles.MigrateRequest, headers=(IF_MATCH_OPTIONAL,),
              answers={200: Answer("Migrated: what to do in Microsoft Entra ID next", profiles.MigrationResult,
                                   headers=("ETag",))},
              problems=(400, 401, 404, 412, 415, 422, 503)),
    Operation("validationTest", "POST", "tenants/{tenantId}/validation-tests",
              "The Validation Test of unsaved form values (the password is used for this sign-in only)",
              body=profiles.ValidationTestRequest,
              answers={200: Answer("The outcome (passed, failed or error)", validation.ValidationOutcome)},
              problems=(400, 401, 404, 415, 422)),
    Operation("validateProfile", "POST", PROFILE + "/validate", "The Validation Test of a saved profile",
              answers={200: Answer("Stored in the history and published as a CloudEvent",
                                   validation.ValidationResult)},
              problems=(401, 404, 409, 503)),
    Operation("listValidations", "GET", PROFILE + "/validations", "A profile's validation history",
              answers={200: Answer("Newest first", validation.ValidationHistory)}, problems=(401, 404, 503)),
    Operation("createValidationJob", "POST", JOBS, "Start a batch check", body=jobs.JobRequest,
              answers={202: Answer("Accepted; Location points at the job", jobs.Job, headers=("Location",))},
              problems=(400, 401, 404, 415, 422, 503)),
    Operation("getValidationJob", "GET", JOBS + "/{jobId}", "A batch check's progress",
              answers={200: Answer("Progress", jobs.Job)}, problems=(401, 404, 503)),
    Operation("getAccountPool", "GET", POOL, "The account pool's members",
              answers={200: Answer("Members", pool.Pool)}, problems=(401, 404, 503)),
    Operation("putAccountPool", "PUT", POOL, "Replace the account pool's members", body=pool.PoolPut,
              answers={200: Answer("Members", pool.Pool)}, problems=(400, 401, 404, 415, 422, 503)),
    Operation("leasePoolMember", "POST", POOL + "/leases",
              "Lease a free member (429 with Retry-After when every member is leased or resting)",
              body=pool.LeaseRequest, body_required=False, answers={201: Answer("Leased", pool.Lease)},
              problems=(400, 401, 404, 415, 422, 429, 503)),
    Operation("releasePoolMember", "DELETE", POOL + "/leases/{leaseId}", "Release a lease (and report throttling)",
              body=pool.ReleaseRequest, body_required=False, answers={200: Answer("Released", pool.Release)},
              problems=(400, 401, 404, 412, 415, 422, 503)),
    Operation("reservedIpAddresses", "GET", "reserved-ip-addresses",
              "The service's egress ranges to exclude from access policies (spec Message 1)",
              query=misc.ReservedIpQuery,
              answers={200: Answer("JSON, or a CSV download (Accept: text/csv or ?format=csv)",
                                   misc.ReservedIpAddresses, also=(CSV,))}, problems=(401, 422)),
    Operation("adminPortalWebhook", "POST", "webhooks/admin-portal",
              "Signed CloudEvent 1.0 (structured JSON). X-Signature: sha256=hex(HMAC-SHA256(key, "
              "X-Signature-Timestamp + '.' + body)); the timestamp is Unix seconds within the replay window.",
              body=misc.CloudEvent, body_media=("application/cloudevents+json", JSON),
              headers=(Header("X-Portal-Id", "The portal's id; its key is the Key Vault secret webhook-{portalId}."),
                       Header("X-Signature-Timestamp", "Unix seconds when the portal signed the request."),
                       Header("X-Signature", "sha256=<hex HMAC-SHA256>")),
              answers={202: Answer("Processed", misc.WebhookResult),
                       200: Answer("Duplicate: no-op", misc.WebhookResult)},
              problems=(400, 401, 422, 503), anonymous=True),
)

BY_ID = {op.operation_id: op for op in OPERATIONS}
PATH_PARAM_SCHEMA: dict[str, Any] = {"type": "string", "format": "uuid", "pattern": GUID_PATTERN}
