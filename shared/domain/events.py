"""CloudEvent types: the outcomes this service publishes and the portal events it accepts."""

VALIDATION_OUTCOME = "com.m365profiles.validation.outcome"
OUTCOME_EXPLAINED = "com.m365profiles.validation.outcome.explained"
PROFILE_UPSERTED = "com.m365profiles.profile.upserted"
PROFILE_DELETED = "com.m365profiles.profile.deleted"
VALIDATION_REQUESTED = "com.m365profiles.validation.requested"
#: What ``POST /api/webhooks/admin-portal`` accepts.
PORTAL_EVENT_TYPES = (PROFILE_UPSERTED, PROFILE_DELETED, VALIDATION_REQUESTED)
