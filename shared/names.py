"""Stable names of queues, tables and secrets (DESIGN §4). Bicep and tests check against these."""

VALIDATION_REQUESTS_QUEUE = "validation-requests"
OUTCOMES_QUEUE = "troubleshooting-outcomes"
#: Follow-ups that name a blocking policy from the tenant's sign-in log when its entry arrives.
EXPLANATIONS_QUEUE = "outcome-explanations"
QUEUES = (VALIDATION_REQUESTS_QUEUE, OUTCOMES_QUEUE, EXPLANATIONS_QUEUE)

PROFILES_TABLE = "Profiles"
VALIDATIONS_TABLE = "Validations"
JOBS_TABLE = "ValidationJobs"
POOL_TABLE = "PoolLeases"
WEBHOOK_EVENTS_TABLE = "WebhookEvents"
TABLES = (PROFILES_TABLE, VALIDATIONS_TABLE, JOBS_TABLE, POOL_TABLE, WEBHOOK_EVENTS_TABLE)

#: The Functions connection name that triggers and the app's storage clients use.
STORAGE_CONNECTION = "AzureWebJobsStorage"


def profile_secret_name(tenant_id: str, profile_id: str) -> str:
    return f"profile-{tenant_id}-{profile_id}"


def webhook_secret_name(portal_id: str) -> str:
    return f"webhook-{portal_id}"


def profile_certificate_name(tenant_id: str, profile_id: str) -> str:
    """The Key Vault certificate (and key) of an app profile; each rotation is a new version."""
    return f"app-{tenant_id}-{profile_id}"
