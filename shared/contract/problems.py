"""RFC 9457 problem types: the one table that maps domain errors to HTTP answers.

Found through the MRO, most specific first (starlette's exception-handler lookup).
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.config import ConfigurationError
from shared.domain import errors
from shared.domain.pool import PoolExhausted

PROBLEM_BASE = "https://m365-profiles.dev/problems/"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


PROBLEMS: dict[type[BaseException], ProblemType] = {
    errors.InvalidInput: ProblemType("validation", 422, "The request has invalid fields"),
    errors.ProfileNotFound: ProblemType("not-found", 404, "Not found"),
    errors.NotFound: ProblemType("not-found", 404, "Not found"),
    errors.NameConflict: ProblemType("name-conflict", 409, "Profile name already in use"),
    errors.SecretMissing: ProblemType("secret-missing", 409, "The profile's password is missing from Key Vault"),
    errors.PreconditionRequired: ProblemType("precondition-required", 428, "If-Match header required"),
    errors.PreconditionFailed: ProblemType("precondition-failed", 412, "The profile was changed by someone else"),
    errors.DependencyUnavailable: ProblemType("dependency-unavailable", 503, "A dependency is unavailable"),
    errors.Unauthorized: ProblemType("unauthorized", 401, "Unauthorized"),
    # A client condition, not a server fault: every member is leased or resting, come back after
    # Retry-After (429, so that monitoring does not count a busy pool as an outage).
    PoolExhausted: ProblemType("pool-exhausted", 429, "No account-pool member is free"),
    ConfigurationError: ProblemType("configuration", 500, "The service is misconfigured"),
}
MALFORMED_JSON = ProblemType("malformed-json", 400, "The body is not valid JSON")
UNSUPPORTED_MEDIA = ProblemType("unsupported-media-type", 415, "Send application/json")
PAYLOAD_TOO_LARGE = ProblemType("payload-too-large", 413, "The body is too large")
INVALID_PATH = ProblemType("invalid-path", 404, "Not found")
INTERNAL = ProblemType("internal", 500, "Internal error")
ALL_PROBLEM_TYPES = sorted({p.slug: p for p in [*PROBLEMS.values(), MALFORMED_JSON, UNSUPPORTED_MEDIA, PAYLOAD_TOO_LARGE,
                                               INVALID_PATH, INTERNAL]}.values(), key=lambda p: p.slug)


def problem_for(exc: BaseException) -> ProblemType | None:
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return None
