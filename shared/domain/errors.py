"""Domain errors. ``functions/_http.py`` holds the one table that maps them to HTTP answers."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One violated rule: which field (a JSON pointer-ish dotted path) and why."""

    field: str
    code: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "detail": self.detail}


class ProfileError(Exception):
    """Base of the errors the profile services raise."""


class InvalidInput(ProfileError):
    """The request breaks one or more field rules; all of them are listed."""

    def __init__(self, errors: list[FieldError], detail: str = "The request has invalid fields."):
        super().__init__(detail)
        self.errors = errors
        self.detail = detail


class NotFound(ProfileError):
    def __init__(self, what: str, ident: str):
        super().__init__(f"{what} {ident} was not found.")
        self.what, self.ident = what, ident


class ProfileNotFound(NotFound):
    def __init__(self, profile_id: str):
        super().__init__("Profile", profile_id)


class NameConflict(ProfileError):
    def __init__(self, name: str):
        super().__init__(f"A profile named {name!r} already exists in this tenant.")
        self.name = name


class PreconditionRequired(ProfileError):
    """The caller must send ``If-Match`` with the profile's ETag."""


class PreconditionFailed(ProfileError):
    """The ETag the caller sent is not the current one: somebody else changed the profile."""


class DependencyUnavailable(ProfileError):
    """Key Vault or Storage did not answer; nothing was written. Retry after ``retry_after`` s."""

    def __init__(self, dependency: str, retry_after: int = 5):
        super().__init__(f"{dependency} is unavailable; nothing was changed. Retry later.")
        self.dependency, self.retry_after = dependency, retry_after


class SecretMissing(ProfileError):
    """The profile's password is no longer in Key Vault (deleted or purged outside this service)."""

    def __init__(self, name: str):
        super().__init__("The profile's password is no longer in Key Vault; enter it again (PATCH password).")
        self.name = name


class Unauthorized(ProfileError):
    """A signed request failed its signature, timestamp or key check."""


class DiagnosisRefused(Exception):
    """Graph refused to show the sign-in log or the policies: ``reason`` says why for the operator,
    ``missing`` names the permissions or licence that would let the product read them."""

    def __init__(self, reason: str, missing: tuple[str, ...] = ()):
        super().__init__(reason)
        self.reason, self.missing = reason, missing
