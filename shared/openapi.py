"""The OpenAPI 3.1 document served at ``/api/openapi.json``.

Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect); tests validate real responses against
them, and check that every HTTP function of the app is described here.
"""
from __future__ import annotations

from typing import Any

GUID = {"type": "string", "format": "uuid", "pattern": "^[0-9a-fA-F-]{36}$"}
DATETIME = {"type": "string", "format": "date-time"}
NULLABLE_DATETIME = {"type": ["string", "null"], "format": "date-time"}
MESSAGE_IDS = ["ACCESS_POLICY_BLOCKED", "CHECK_MFA_OR_APP_PASSWORD", "MFA_ENABLED", "INVALID_APP_PASSWORD",
               "ACCOUNT_LOCKED", "PASSWORD_EXPIRED", "ACCOUNT_DISABLED", "USER_NOT_FOUND", "TENANT_NOT_FOUND",
               "INSUFFICIENT_ROLE", "LEGACY_AUTH_BLOCKED", "LEGACY_AUTH_RETIRED", "ADMIN_CENTER_UNREACHABLE",
               "THROTTLED", "SERVICE_UNAVAILABLE", "UNKNOWN_FAILURE"]


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


ADMIN_CENTER_IN = {
    "type": "object", "additionalProperties": False,
    "properties": {"mode": {"enum": ["default", "custom"]}, "url": {"type": ["string", "null"], "format": "uri"}},
}
PROFILE_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 128, "description": "Profile Name (unique per tenant)"},
    "description": {"type": ["string", "null"], "maxLength": 1000},
    "mfaEnabled": {"type": "boolean", "description": "Our organization uses multi-factor authentication"},
    "username": {"type": "string", "maxLength": 113, "description": "Login ID (UPN) of the service account"},
    "password": {"type": "string", "minLength": 1, "maxLength": 256, "writeOnly": True,
                 "description": "Password, or the app password when MFA is on. Write-only."},
    "adminCenter": ADMIN_CENTER_IN,
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail", "correlationId"],
        "properties": {
            "type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"}, "instance": {"type": "string"},
            "correlationId": {"type": "string"}, "retryAfterSeconds": {"type": "integer"},
            "errors": {"type": "array", "items": {
                "type": "object", "required": ["field", "code", "detail"],
                "properties": {"field": {"type": "string"}, "code": {"type": "string"}, "detail": {"type": "string"}}}},
        },
    },
    "ProfileCreate": {"type": "object", "additionalProperties": False,
                      "required": ["name", "username", "password"], "properties": PROFILE_FIELDS},
    "ProfilePatch": {"type": "object", "additionalProperties": False, "properties": PROFILE_FIELDS,
                     "description": "JSON Merge Patch (RFC 7396) of the editable fields."},
    "LastValidation": {"type": ["object", "null"], "required": ["status", "messageId", "at"],
                       "properties": {"status": {"enum": ["passed", "failed", "error"]},
                                      "messageId": {"type": ["string", "null"]}, "at": DATETIME}},
    "Profile": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "tenantId", "name", "description", "kind", "mfaEnabled", "username", "adminCenter",
                     "passwordSet", "passwordUpdatedAt", "lastValidation", "limitations", "etag",
                     "createdAt", "updatedAt"],
        "properties": {
            "id": GUID, "tenantId": GUID, "name": {"type": "string"}, "description": {"type": "string"},
            "kind": {"enum": ["mfa", "common"]}, "mfaEnabled": {"type": "boolean"}, "username": {"type": "string"},
            "adminCenter": {"type": "object", "required": ["mode", "url", "effectiveUrl"],
                            "properties": {"mode": {"enum": ["default", "custom"]},
                                           "url": {"type": ["string", "null"]},
                                           "effectiveUrl": {"type": ["string", "null"]}}},
            "passwordSet": {"type": "boolean"}, "passwordUpdatedAt": NULLABLE_DATETIME,
            "lastValidation": ref("LastValidation"),
            "limitations": {"type": "array", "items": {"enum": ["NO_INVITE_M365_USERS", "NO_GHOST_GUEST_USERS_RULE",
                                                                "CLOUD_MANAGEMENT_FEATURES_LIMITED"]}},
            "limitationDetails": {"type": "array", "items": {"type": "object", "required": ["id", "text"]}},
            "guidance": {"type": "array", "items": {"type": "string"}},
            "history": {"type": "array", "items": {"type": "object", "required": ["at", "event", "detail"],
                                                   "properties": {"at": DATETIME, "event": {"type": "string"},
                                                                  "detail": {"type": "string"}}}},
            "etag": {"type": ["string", "null"]}, "createdAt": DATETIME, "updatedAt": DATETIME,
        },
    },
    "ProfilePage": {"type": "object", "required": ["items", "continuationToken", "nextLink"],
                    "properties": {"items": {"type": "array", "items": ref("Profile")},
                                   "continuationToken": {"type": ["string", "null"]},
                                   "nextLink": {"type": ["string", "null"]}}},
    "Health": {"type": "object", "required": ["status", "dependencies"],
               "properties": {"status": {"enum": ["healthy", "unhealthy"]},
                              "dependencies": {"type": "object", "additionalProperties": {
                                  "type": "object", "required": ["status", "latencyMs"],
                                  "properties": {"status": {"enum": ["up", "down"]},
                                                 "latencyMs": {"type": "number"}, "error": {"type": "string"}}}}}},
    "WebhookResult": {"type": "object", "required": ["eventId", "type", "duplicate"],
                      "properties": {"eventId": {"type": "string"}, "type": {"type": "string"},
                                     "duplicate": {"type": "boolean"}, "result": {"type": "object"}}},
    "CloudEvent": {"type": "object", "required": ["specversion", "id", "source", "type", "data"],
                   "properties": {"specversion": {"const": "1.0"}, "id": {"type": "string"},
                                  "source": {"type": "string"}, "type": {"type": "string"},
                                  "time": DATETIME, "data": {"type": "object"}}},
}

PROBLEM_RESPONSE = {"description": "Problem (RFC 9457)",
                    "content": {"application/problem+json": {"schema": ref("Problem")}}}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(schema_name)}}}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(c): PROBLEM_RESPONSE for c in codes}


TENANT = {"name": "tenantId", "in": "path", "required": True, "schema": GUID,
          "description": "Microsoft 365 tenant id"}
PROFILE_ID = {"name": "profileId", "in": "path", "required": True, "schema": GUID}
IF_MATCH = {"name": "If-Match", "in": "header", "required": True, "schema": {"type": "string"},
            "description": "The profile's ETag (428 without it, 412 when stale)."}
CORRELATION = {"name": "x-correlation-id", "in": "header", "required": False, "schema": {"type": "string"}}


def _body(schema_name: str, media: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {media: {"schema": ref(schema_name)}}}


PATHS: dict[str, Any] = {
    "/api/health": {"get": {"operationId": "health", "security": [], "responses": {
        "200": _json("Health", "All dependencies reachable"), "503": _json("Health", "A dependency is down")}}},
    "/api/tenants/{tenantId}/profiles": {
        "parameters": [TENANT, CORRELATION],
        "post": {"operationId": "createProfile", "requestBody": _body("ProfileCreate"),
                 "responses": {"201": _json("Profile", "Created"), **_problems(400, 401, 404, 409, 415, 422, 503)}},
        "get": {"operationId": "listProfiles", "parameters": [
            {"name": "kind", "in": "query", "schema": {"enum": ["mfa", "common"]}},
            {"name": "lastStatus", "in": "query", "schema": {"enum": ["passed", "failed", "error", "never"]}},
            {"name": "pageSize", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
            {"name": "continuationToken", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": _json("ProfilePage", "A page of profiles"), **_problems(401, 404, 422, 503)}},
    },
    "/api/tenants/{tenantId}/profiles/{profileId}": {
        "parameters": [TENANT, PROFILE_ID, CORRELATION],
        "get": {"operationId": "getProfile",
                "responses": {"200": _json("Profile", "The profile"), **_problems(401, 404, 503)}},
        "patch": {"operationId": "patchProfile", "parameters": [IF_MATCH],
                  "requestBody": _body("ProfilePatch", "application/merge-patch+json"),
                  "responses": {"200": _json("Profile", "Updated"),
                                **_problems(400, 401, 404, 409, 412, 415, 422, 428, 503)}},
        "delete": {"operationId": "deleteProfile", "parameters": [IF_MATCH],
                   "responses": {"204": {"description": "Deleted (the secret is soft-deleted)"},
                                 **_problems(401, 404, 412, 428, 503)}},
    },
    "/api/webhooks/admin-portal": {"post": {
        "operationId": "adminPortalWebhook", "security": [],
        "description": "Signed CloudEvent 1.0 (structured JSON). Headers X-Portal-Id, X-Signature-Timestamp "
                       "(Unix seconds, 5-minute window), X-Signature: sha256=hex(HMAC-SHA256(key, ts + '.' + body)).",
        "parameters": [{"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                       for h in ("X-Portal-Id", "X-Signature-Timestamp", "X-Signature")],
        "requestBody": _body("CloudEvent", "application/cloudevents+json"),
        "responses": {"202": _json("WebhookResult", "Processed"), "200": _json("WebhookResult", "Duplicate: no-op"),
                      **_problems(401, 422, 503)}}},
    "/api/openapi.json": {"get": {"operationId": "openapi", "security": [],
                                  "responses": {"200": {"description": "This document"}}}},
}

SCHEMAS.update({
    "ValidationTestRequest": {"type": "object", "additionalProperties": False,
                              "required": ["username", "password"], "properties": PROFILE_FIELDS},
    "ValidationOutcome": {
        "type": "object",
        "required": ["status", "messageId", "message", "solutions", "userRole", "checks", "evidence",
                     "limitations", "testedAt"],
        "properties": {
            "status": {"enum": ["passed", "failed", "error"]},
            "messageId": {"type": ["string", "null"]},
            "message": {"type": "string"}, "solutionsIntro": {"type": ["string", "null"]},
            "solutions": {"type": "array", "items": {"type": "string"}}, "cause": {"type": ["string", "null"]},
            "userRole": {"enum": ["Global Administrator", "SharePoint Administrator", "other", None]},
            "userRoleNote": {"type": ["string", "null"]},
            "checks": {"type": "array", "items": {"type": "object", "required": ["name", "status", "detail"],
                                                  "properties": {"name": {"type": "string"},
                                                                 "status": {"enum": ["passed", "failed", "skipped"]},
                                                                 "detail": {"type": "string"}}}},
            "evidence": {"type": "object", "properties": {
                "aadstsCode": {"type": ["string", "null"]}, "httpStatus": {"type": ["integer", "null"]},
                "correlationId": {"type": ["string", "null"]}, "traceId": {"type": ["string", "null"]},
                "retryAfterSeconds": {"type": ["integer", "null"]}, "signInPath": {"type": "string"},
                "step": {"type": ["string", "null"]}, "errorCode": {"type": ["string", "null"]},
                "upstreamRequests": {"type": "integer"}}},
            "limitations": {"type": "array", "items": {"type": "string"}},
            "testedAt": DATETIME, "durationMs": {"type": "integer"}, "recordId": {"type": "string"},
        },
        "x-message-ids": MESSAGE_IDS,
    },
    "ValidationHistory": {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
        "allOf": [ref("ValidationOutcome"), {"type": "object", "required": ["recordId", "at", "reason"],
                                             "properties": {"recordId": {"type": "string"}, "at": DATETIME,
                                                            "reason": {"type": "string"},
                                                            "jobId": {"type": ["string", "null"]}}}]}}}},
    "JobRequest": {"type": "object", "additionalProperties": False, "properties": {
        "profileIds": {"type": "array", "items": GUID, "minItems": 1, "maxItems": 10000},
        "all": {"const": True},
        "filter": {"type": "object", "properties": {"lastStatus": {"enum": ["passed", "failed", "error", "never"]}}}},
        "description": "Exactly one of profileIds, all or filter."},
    "Job": {"type": "object",
            "required": ["id", "state", "total", "done", "passed", "failed", "errors", "throttled", "byMessageId",
                         "percent", "eta", "startedAt", "finishedAt"],
            "properties": {"id": GUID, "tenantId": GUID, "reason": {"enum": ["batch", "scheduled", "webhook"]},
                           "state": {"enum": ["queued", "running", "completed", "completedWithErrors"]},
                           "total": {"type": "integer"}, "done": {"type": "integer"}, "passed": {"type": "integer"},
                           "failed": {"type": "integer"}, "errors": {"type": "integer"},
                           "throttled": {"type": "integer"},
                           "byMessageId": {"type": "object", "additionalProperties": {"type": "integer"}},
                           "failures": {"type": "array", "items": {
                               "type": "object", "required": ["messageId", "count", "profileIds"]}},
                           "percent": {"type": "number"}, "eta": NULLABLE_DATETIME, "createdAt": DATETIME,
                           "startedAt": NULLABLE_DATETIME, "finishedAt": NULLABLE_DATETIME,
                           "selection": {"type": "object"}}},
    "PoolPut": {"type": "object", "required": ["members"], "additionalProperties": False,
                "properties": {"members": {"type": "array", "items": GUID, "maxItems": 50}}},
    "Pool": {"type": "object", "required": ["tenantId", "members"], "properties": {
        "tenantId": GUID, "members": {"type": "array", "items": {
            "type": "object", "required": ["profileId", "healthy", "leased", "resting"],
            "properties": {"profileId": GUID, "username": {"type": ["string", "null"]}, "exists": {"type": "boolean"},
                           "healthy": {"type": "boolean"}, "lastValidation": ref("LastValidation"),
                           "leased": {"type": "boolean"}, "leasedUntil": NULLABLE_DATETIME,
                           "resting": {"type": "boolean"}, "restUntil": NULLABLE_DATETIME,
                           "lastLeasedAt": NULLABLE_DATETIME, "throttleReports": {"type": "integer"}}}}}},
    "LeaseRequest": {"type": ["object", "null"], "properties": {
        "leaseSeconds": {"type": "integer", "minimum": 1, "maximum": 3600}}},
    "Lease": {"type": "object", "required": ["leaseId", "profileId", "username", "secretRef", "expiresAt"],
              "properties": {"leaseId": GUID, "profileId": GUID, "username": {"type": "string"},
                             "secretRef": {"type": ["object", "null"], "required": ["vaultUri", "name", "version"],
                                           "properties": {"vaultUri": {"type": "string"}, "name": {"type": "string"},
                                                          "version": {"type": "string"}}},
                             "expiresAt": DATETIME},
              "description": "Never the password: a caller with Key Vault access reads it by secretRef."},
    "ReleaseRequest": {"type": ["object", "null"], "properties": {
        "retryAfterSeconds": {"type": "integer", "minimum": 0, "maximum": 86400,
                              "description": "SharePoint throttled this account: rest it this long."}}},
    "Release": {"type": "object", "required": ["leaseId", "profileId", "restUntil"],
                "properties": {"leaseId": GUID, "profileId": GUID, "restUntil": NULLABLE_DATETIME}},
    "ReservedIpAddresses": {"type": "object", "required": ["purpose", "ranges"], "properties": {
        "purpose": {"type": "string"}, "ranges": {"type": "array", "items": {
            "type": "object", "required": ["cidr", "version"],
            "properties": {"cidr": {"type": "string"}, "version": {"enum": [4, 6]}}}}}},
})
JOB_ID = {"name": "jobId", "in": "path", "required": True, "schema": GUID}
LEASE_ID = {"name": "leaseId", "in": "path", "required": True, "schema": GUID}
PATHS.update({
    "/api/tenants/{tenantId}/validation-tests": {"parameters": [TENANT, CORRELATION], "post": {
        "operationId": "validationTest", "description": "The Validation Test of unsaved form values; the password "
        "is used for this one sign-in and never stored or echoed.", "requestBody": _body("ValidationTestRequest"),
        "responses": {"200": _json("ValidationOutcome", "The outcome (passed, failed or error)"),
                      **_problems(400, 401, 404, 415, 422)}}},
    "/api/tenants/{tenantId}/profiles/{profileId}/validate": {"parameters": [TENANT, PROFILE_ID, CORRELATION], "post": {
        "operationId": "validateProfile", "responses": {
            "200": _json("ValidationOutcome", "Stored in the history and published as a CloudEvent"),
            **_problems(401, 404, 503)}}},
    "/api/tenants/{tenantId}/profiles/{profileId}/validations": {"parameters": [TENANT, PROFILE_ID, CORRELATION], "get": {
        "operationId": "listValidations", "responses": {"200": _json("ValidationHistory", "Newest first"),
                                                         **_problems(401, 404, 503)}}},
    "/api/tenants/{tenantId}/validation-jobs": {"parameters": [TENANT, CORRELATION], "post": {
        "operationId": "createValidationJob", "requestBody": _body("JobRequest"),
        "responses": {"202": _json("Job", "Accepted; Location points at the job"), **_problems(400, 401, 404, 422, 503)}}},
    "/api/tenants/{tenantId}/validation-jobs/{jobId}": {"parameters": [TENANT, JOB_ID, CORRELATION], "get": {
        "operationId": "getValidationJob", "responses": {"200": _json("Job", "Progress"), **_problems(401, 404)}}},
    "/api/tenants/{tenantId}/account-pool": {"parameters": [TENANT, CORRELATION],
        "get": {"operationId": "getAccountPool", "responses": {"200": _json("Pool", "Members"), **_problems(401, 404)}},
        "put": {"operationId": "putAccountPool", "requestBody": _body("PoolPut"),
                "responses": {"200": _json("Pool", "Members"), **_problems(400, 401, 404, 422)}}},
    "/api/tenants/{tenantId}/account-pool/leases": {"parameters": [TENANT, CORRELATION], "post": {
        "operationId": "leasePoolMember", "requestBody": {"required": False, "content": {
            "application/json": {"schema": ref("LeaseRequest")}}},
        "responses": {"201": _json("Lease", "Leased"), **_problems(401, 404, 422),
                      "503": {**PROBLEM_RESPONSE, "description": "Every healthy member is leased or resting; "
                                                                 "Retry-After says when one frees up"}}}},
    "/api/tenants/{tenantId}/account-pool/leases/{leaseId}": {"parameters": [TENANT, LEASE_ID, CORRELATION], "delete": {
        "operationId": "releasePoolMember", "requestBody": {"required": False, "content": {
            "application/json": {"schema": ref("ReleaseRequest")}}},
        "responses": {"200": _json("Release", "Released"), **_problems(401, 404, 412, 422)}}},
    "/api/reserved-ip-addresses": {"get": {
        "operationId": "reservedIpAddresses", "parameters": [
            {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}],
        "responses": {"200": {"description": "JSON, or a CSV download (Accept: text/csv or ?format=csv)",
                              "content": {"application/json": {"schema": ref("ReservedIpAddresses")},
                                          "text/csv": {"schema": {"type": "string"}}}}, **_problems(401)}}},
    "/api/admin": {"get": {"operationId": "adminPage", "responses": {
        "200": {"description": "The admin page", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
})


def document(problem_types: list[Any]) -> dict[str, Any]:
    """The whole document; ``problem_types`` (``uri``/``status``/``title``) come from the HTTP layer."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Microsoft 365 service-account profiles", "version": "1.0.0",
                 "description": "Profiles, Validation Test and troubleshooting, batch checks, account pool."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": [{"functionKey": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}},
            "x-problem-types": [{"type": p.uri, "status": p.status, "title": p.title} for p in problem_types],
        },
    }
