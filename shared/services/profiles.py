"""Profile use cases: create, get, list, patch (merge patch), delete.

Write order keeps a profile whole: the secret is written first, the row second. If Key Vault fails,
nothing is written. If the row write fails after a secret write, the new secret version is
referenced by no row; reads always name an explicit version, so it is harmless, and it is also
disabled (create: the whole secret soft-deleted) on a best-effort basis.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable

from shared.cloud import CloudEndpoints
from shared.domain.errors import (DependencyUnavailable, NameConflict, PreconditionFailed,
                                  PreconditionRequired, ProfileError, ProfileNotFound)
from shared.domain.ports import Page, ProfileRepository, SecretStore
from shared.domain.profile import (AdminCenterMode, HistoryEntry, Kind, ProfileInput, ProfileView,
                                   ServiceAccountProfile, merge_patch, profile_as_form, profile_input)
from shared.names import profile_secret_name

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ProfileServices:
    """The profile use cases over their ports (built by :mod:`shared.bootstrap`)."""

    profiles: ProfileRepository
    secrets: SecretStore
    endpoints: CloudEndpoints
    clock: Clock = utcnow

    # -- queries ---------------------------------------------------------------------------
    def get_profile(self, tenant_id: str, profile_id: str) -> ProfileView:
        return self.view(self.profiles.get(tenant_id, profile_id))

    def list_profiles(self, tenant_id: str, *, kind: str | None = None, last_status: str | None = None,
                      page_size: int = 50, continuation_token: str | None = None) -> tuple[list[ProfileView], str | None]:
        """:return: (a page of profiles, the continuation token of the next page or None)."""
        page: Page = self.profiles.list(tenant_id, kind=kind, last_status=last_status, page_size=page_size,
                                        continuation_token=continuation_token)
        return [self.view(p) for p in page.items], page.continuation_token

    def view(self, profile: ServiceAccountProfile) -> ProfileView:
        return ProfileView(profile, self.effective_admin_center_url(profile))

    # -- commands --------------------------------------------------------------------------
    def create_profile(self, tenant_id: str, form: ProfileInput, *, correlation_id: str,
                       profile_id: str | None = None) -> ProfileView:
        """Create a profile from checked form values (the contract's ``ProfileCreate``);
        ``profile_id`` lets a signed portal event choose the id (idempotent upserts)."""
        if form.password is None:
            raise ValueError("a new profile needs its password (the contract requires it)")
        if self.profiles.name_exists(tenant_id, form.name):
            raise NameConflict(form.name)
        now = self.clock()
        profile_id = profile_id or str(uuid.uuid4())
        secret = self.secrets.set_secret(profile_secret_name(tenant_id, profile_id), form.password,
                                         tags=_tags(tenant_id, profile_id))
        profile = ServiceAccountProfile(
            id=profile_id, tenant_id=tenant_id, name=form.name, description=form.description,
            mfa_enabled=form.mfa_enabled, username=form.username, admin_center=form.admin_center,
            secret=secret, password_updated_at=now, created_at=now, updated_at=now,
            history=(HistoryEntry(now, "created", f"kind {Kind.MFA.value if form.mfa_enabled else Kind.COMMON.value}"),))
        try:
            saved = self.profiles.add(profile)
        except (ProfileError, Exception):
            # The secret belongs to a profile id that now never exists: remove it (soft delete).
            self._best_effort(lambda: self.secrets.delete_secret(secret.name), "delete orphan secret")
            raise
        log.info("profile created", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                           "profile_id": profile_id, "kind": saved.kind.value})
        return self.view(saved)

    def patch_profile(self, tenant_id: str, profile_id: str, changes: dict[str, Any], *, if_match: str | None,
                      correlation_id: str) -> ProfileView:
        """Apply a merge patch whose fields passed the contract (``ProfilePatch.changes()``); the
        merged profile must pass the cross-field rules of a create."""
        current = self._current(tenant_id, profile_id, if_match)
        merged = merge_patch(profile_as_form(current), {k: v for k, v in changes.items() if k != "password"})
        merged["password"] = changes.get("password")
        form = profile_input(merged)
        if form.name != current.name and self.profiles.name_exists(tenant_id, form.name,
                                                                   exclude_profile_id=profile_id):
            raise NameConflict(form.name)
        now = self.clock()
        updated = self._apply(current, form, now)
        new_secret = None
        if form.password is not None:
            new_secret = self.secrets.set_secret(current.secret.name if current.secret else
                                                 profile_secret_name(tenant_id, profile_id), form.password,
                                                 tags=_tags(tenant_id, profile_id))
            updated = replace(updated, secret=new_secret, password_updated_at=now).with_history(
                HistoryEntry(now, "passwordChanged", "a new secret version was written"))
        try:
            saved = self.profiles.update(updated, previous_name=current.name, etag=current.etag or "")
        except Exception:
            if new_secret is not None:
                # Not referenced by any row (reads name a version); disabling makes that explicit.
                self._best_effort(lambda: self.secrets.disable_version(new_secret), "disable orphan version")
            raise
        log.info("profile updated", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                           "profile_id": profile_id, "kind": saved.kind.value,
                                           "password_changed": new_secret is not None})
        return self.view(saved)

    def delete_profile(self, tenant_id: str, profile_id: str, *, if_match: str | None,
                       correlation_id: str) -> None:
        current = self._current(tenant_id, profile_id, if_match)
        if current.secret:
            self.secrets.delete_secret(current.secret.name)  # soft delete: recoverable
        try:
            self.profiles.delete(tenant_id, profile_id, etag=current.etag or "")
        except Exception:
            if current.secret:
                self._best_effort(lambda: self.secrets.recover_secret(current.secret.name), "recover secret")
            raise
        log.info("profile deleted", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                           "profile_id": profile_id})

    def upsert_profile(self, tenant_id: str, profile_id: str, *, create: Callable[[], ProfileInput],
                       changes: Callable[[], dict[str, Any]], correlation_id: str) -> tuple[ProfileView, bool]:
        """Create or merge-patch (last writer wins: used by signed portal events). ``create`` and
        ``changes`` parse the event's profile as a create or as a patch, whichever applies.

        :return: (profile, whether it was created)."""
        try:
            self.profiles.get(tenant_id, profile_id)
        except ProfileNotFound:
            return self.create_profile(tenant_id, create(), correlation_id=correlation_id,
                                       profile_id=profile_id), True
        return self.patch_profile(tenant_id, profile_id, changes(), if_match="*",
                                  correlation_id=correlation_id), False

    # -- helpers ---------------------------------------------------------------------------
    def _current(self, tenant_id: str, profile_id: str, if_match: str | None) -> ServiceAccountProfile:
        """The stored profile, if the caller's ``If-Match`` names it (``*``: any version)."""
        if not if_match:
            raise PreconditionRequired()
        current = self.profiles.get(tenant_id, profile_id)
        if if_match != "*" and if_match != current.etag:
            raise PreconditionFailed()
        return current

    def _apply(self, current: ServiceAccountProfile, form: ProfileInput, now: datetime) -> ServiceAccountProfile:
        updated = replace(current, name=form.name, description=form.description, mfa_enabled=form.mfa_enabled,
                          username=form.username, admin_center=form.admin_center, updated_at=now)
        if current.kind is not updated.kind:
            detail = ("converted from an MFA service account profile to a common service account profile"
                      if updated.kind is Kind.COMMON else
                      "converted from a common service account profile to an MFA service account profile")
            updated = updated.with_history(HistoryEntry(now, "converted", detail))
        return updated

    def _best_effort(self, action: Callable[[], None], what: str) -> None:
        try:
            action()
        except DependencyUnavailable:
            log.warning("could not %s; it is not referenced by any profile", what)

    def effective_admin_center_url(self, profile: ServiceAccountProfile | ProfileInput) -> str | None:
        """The custom URL, or the default one derived from the tenant's SharePoint name.

        The SharePoint name is the first label of the account's ``*.onmicrosoft.*`` domain; for a
        vanity domain the default URL cannot be derived and the validation uses sign-in data.
        """
        if profile.admin_center.mode is AdminCenterMode.CUSTOM:
            return profile.admin_center.url
        domain = profile.username.rpartition("@")[2].lower()
        labels = domain.split(".")
        if len(labels) >= 3 and labels[1] == "onmicrosoft":
            return self.endpoints.default_admin_center_url(labels[0])
        return None


def _tags(tenant_id: str, profile_id: str) -> dict[str, str]:
    return {"tenantId": tenant_id, "profileId": profile_id, "purpose": "service-account-password"}
