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
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from shared.cloud import CloudEndpoints
from shared.domain.app_validation import admin_consent_url
from shared.domain.certificates import CertificateInfo
from shared.domain.errors import (DependencyUnavailable, FieldError, InvalidInput, NameConflict, NotFound,
                                  PreconditionFailed, PreconditionRequired, ProfileError, ProfileNotFound)
from shared.domain.ports import CertificateStore, Page, ProfileRepository, SecretStore
from shared.domain.profile import (AdminCenter, AdminCenterMode, AppProfileInput, AppRegistration, CertificateSource,
                                   GenerateCertificate, HistoryEntry, Kind, ProfileInput, ProfileView,
                                   ServiceAccountProfile, merge_patch, profile_as_form, profile_input,
                                   sharepoint_url_of)
from shared.names import profile_certificate_name, profile_secret_name

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
    #: App profiles' certificates (Key Vault); None where app profiles are not wired.
    certificates: CertificateStore | None = None
    certificate_subject: str = "CN=m365-service-account-profiles"
    certificate_validity_months: int = 12

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
        consent = (admin_consent_url(self.endpoints.authority_host, profile.tenant_id, profile.app.client_id)
                   if profile.app else None)
        return ProfileView(profile, self.effective_admin_center_url(profile), admin_consent_url=consent,
                           as_of=self.clock())

    def consent_url(self, tenant_id: str, client_id: str) -> str:
        return admin_consent_url(self.endpoints.authority_host, tenant_id, client_id)

    # -- commands --------------------------------------------------------------------------
    def create_profile(self, tenant_id: str, form: ProfileInput, *, correlation_id: str,
                       profile_id: str | None = None) -> ProfileView:
        """Create a profile from checked form values (the contract's ``ProfileCreate``);
        ``profile_id`` lets a signed portal event choose the id (idempotent upserts)."""
        if form.password is None:
            raise ValueError("a new profile needs its password (the contract requires it)")
        now = self.clock()
        profile_id = profile_id or str(uuid.uuid4())
        with self.profiles.reserving(tenant_id, form.name, profile_id):  # a taken name: no secret written
            secret = self.secrets.set_secret(profile_secret_name(tenant_id, profile_id), form.password,
                                             tags=_tags(tenant_id, profile_id))
            profile = ServiceAccountProfile(
                id=profile_id, tenant_id=tenant_id, name=form.name, description=form.description,
                mfa_enabled=form.mfa_enabled, username=form.username, admin_center=form.admin_center,
                secret=secret, password_updated_at=now, created_at=now, updated_at=now,
                history=(HistoryEntry(now, "created",
                                      f"kind {Kind.MFA.value if form.mfa_enabled else Kind.COMMON.value}"),))
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
        if current.app is not None:
            return self._patch_app(current, changes, correlation_id=correlation_id)
        app_fields = sorted(k for k in set(changes) & {"clientId", "workload", "sharePointUrl"}
                            if changes[k] is not None)
        changes = {k: v for k, v in changes.items() if k not in ("clientId", "workload", "sharePointUrl")}
        if app_fields:
            raise InvalidInput([FieldError(f, "notAllowed", "A field of app profiles only; to turn this profile "
                                                            "into one, use POST .../migrate.") for f in app_fields])
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
        if current.app:
            self._certificates().delete_certificate(current.app.certificate.name)  # soft delete, with its key
        try:
            self.profiles.delete(tenant_id, profile_id, etag=current.etag or "")
        except Exception:
            if current.secret:
                self._best_effort(lambda: self.secrets.recover_secret(current.secret.name), "recover secret")
            raise
        log.info("profile deleted", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                           "profile_id": profile_id})

    def upsert_profile(self, tenant_id: str, profile_id: str, *,
                       create: Callable[[], ProfileInput | AppProfileInput],
                       changes: Callable[[], dict[str, Any]], correlation_id: str) -> tuple[ProfileView, bool]:
        """Create or merge-patch (last writer wins: used by signed portal events). ``create`` and
        ``changes`` parse the event's profile as a create or as a patch, whichever applies.

        :return: (profile, whether it was created)."""
        try:
            self.profiles.get(tenant_id, profile_id)
        except ProfileNotFound:
            form = create()
            make = self.create_app_profile if isinstance(form, AppProfileInput) else self.create_profile
            return make(tenant_id, form, correlation_id=correlation_id, profile_id=profile_id), True
        return self.patch_profile(tenant_id, profile_id, changes(), if_match="*",
                                  correlation_id=correlation_id), False

    # -- app profiles ----------------------------------------------------------------------
    def create_app_profile(self, tenant_id: str, form: AppProfileInput, *, correlation_id: str,
                           profile_id: str | None = None) -> ProfileView:
        """Create an app profile: its certificate first (Key Vault generates it with a key that cannot
        be exported, or imports the PFX), then the row. No row, no certificate: if the row write fails
        the certificate is soft-deleted."""
        now = self.clock()
        profile_id = profile_id or str(uuid.uuid4())
        with self.profiles.reserving(tenant_id, form.name, profile_id):  # a taken name: no certificate made
            certificate = self._new_certificate(tenant_id, profile_id, form.certificate)
            profile = ServiceAccountProfile(
                id=profile_id, tenant_id=tenant_id, name=form.name, description=form.description,
                mfa_enabled=False, username="", admin_center=AdminCenter(), secret=None, password_updated_at=None,
                created_at=now, updated_at=now,
                history=(HistoryEntry(now, "created", f"kind app (client id {form.client_id}, "
                                                      f"certificate {certificate.thumbprint})"),),
                app=AppRegistration(form.client_id, certificate, workload=form.workload,
                                    sharepoint_url=form.sharepoint_url))
            with self._orphan_removed(certificate):
                saved = self.profiles.add(profile)
        log.info("profile created", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                           "profile_id": profile_id, "kind": Kind.APP.value})
        return self.view(saved)

    def get_certificate(self, tenant_id: str, profile_id: str) -> CertificateInfo:
        """The app profile's current certificate (public part, from the row: no Key Vault call)."""
        profile = self.profiles.get(tenant_id, profile_id)
        if profile.app is None:
            raise NotFound("Certificate", profile_id)
        return profile.app.certificate

    def rotate_certificate(self, tenant_id: str, profile_id: str, source: CertificateSource | None, *,
                           if_match: str | None, correlation_id: str) -> ProfileView:
        """A new certificate version for an app profile. The one it replaces stays accepted (the test
        falls back to it while the new one is not registered on the app) until the new one has
        signed in once."""
        current = self._current(tenant_id, profile_id, if_match or "*")
        if current.app is None:
            raise InvalidInput([FieldError("profileId", "kind", "Only app profiles have a certificate; "
                                                                "migrate this profile first (POST .../migrate).")])
        now = self.clock()
        new = self._new_certificate(tenant_id, profile_id, source or GenerateCertificate())
        old = current.app.certificate
        updated = replace(current, updated_at=now, app=replace(current.app, certificate=new, previous_certificate=old,
                                                               alert=None)).with_history(
            HistoryEntry(now, "certificateRotated", f"new certificate {new.thumbprint}; {old.thumbprint} is accepted "
                                                    f"until the new one has signed in"))
        saved = self.profiles.update(updated, previous_name=current.name, etag=current.etag or "")
        log.info("certificate rotated", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                               "profile_id": profile_id, "thumbprint": new.thumbprint})
        return self.view(saved)

    def migrate_profile(self, tenant_id: str, profile_id: str, build: Callable[[str, str], AppProfileInput], *,
                        if_match: str | None, correlation_id: str) -> ProfileView:
        """Turn an MFA or common profile into an app profile. Its password secret stays (soft-deleted
        by the first passed Validation Test of the app profile, so a failed migration can go back)."""
        current = self._current(tenant_id, profile_id, if_match or "*")
        if current.app is not None:
            raise InvalidInput([FieldError("profileId", "kind", "This profile is already an app profile.")])
        form = build(current.name, current.description)
        now = self.clock()
        certificate = self._new_certificate(tenant_id, profile_id, form.certificate)
        sharepoint = form.sharepoint_url or sharepoint_url_of(self.effective_admin_center_url(current))
        updated = replace(current, updated_at=now, mfa_enabled=False,
                          app=AppRegistration(form.client_id, certificate, workload=form.workload,
                                              sharepoint_url=sharepoint)).with_history(
            HistoryEntry(now, "migrated", f"migrated from a{'n MFA' if current.mfa_enabled else ' common'} service "
                                          f"account profile to an app profile (client id {form.client_id}, "
                                          f"certificate {certificate.thumbprint}); the old password is deleted "
                                          f"after the first passed Validation Test"))
        with self._orphan_removed(certificate):
            saved = self.profiles.update(updated, previous_name=current.name, etag=current.etag or "")
        log.info("profile migrated", extra={"correlation_id": correlation_id, "tenant_id": tenant_id,
                                            "profile_id": profile_id, "from_kind": current.kind.value})
        return self.view(saved)

    @contextmanager
    def _orphan_removed(self, certificate: CertificateInfo) -> Iterator[None]:
        """A row write that fails leaves a certificate no profile names: soft-delete it (best effort)."""
        try:
            yield
        except Exception:
            self._best_effort(lambda: self._certificates().delete_certificate(certificate.name),
                              "delete orphan certificate")
            raise

    def _new_certificate(self, tenant_id: str, profile_id: str, source: CertificateSource) -> CertificateInfo:
        name = profile_certificate_name(tenant_id, profile_id)
        if isinstance(source, GenerateCertificate):
            return self._certificates().create_certificate(name, subject=self.certificate_subject,
                                                           validity_months=self.certificate_validity_months)
        return self._certificates().import_certificate(name, source.pfx, source.password)

    def _certificates(self) -> CertificateStore:
        if self.certificates is None:
            raise DependencyUnavailable("Key Vault certificates")
        return self.certificates

    def _patch_app(self, current: ServiceAccountProfile, changes: dict[str, Any], *, correlation_id: str) -> ProfileView:
        user_fields = sorted(k for k in set(changes) & {"mfaEnabled", "username", "password", "adminCenter"}
                             if changes[k] is not None)
        if user_fields:
            raise InvalidInput([FieldError(f, "notAllowed", "Not a field of an app profile.") for f in user_fields])
        name = (changes.get("name") or current.name).strip()
        if name != current.name and self.profiles.name_exists(current.tenant_id, name,
                                                              exclude_profile_id=current.id):
            raise NameConflict(name)
        app = current.app
        if "clientId" in changes:
            app = replace(app, client_id=changes["clientId"].lower())
        if "workload" in changes:
            app = replace(app, workload=changes["workload"] or "backup")
        if "sharePointUrl" in changes:
            app = replace(app, sharepoint_url=changes["sharePointUrl"])
        description = current.description if "description" not in changes else (changes["description"] or "")
        updated = replace(current, name=name, description=description, app=app, updated_at=self.clock())
        saved = self.profiles.update(updated, previous_name=current.name, etag=current.etag or "")
        log.info("profile updated", extra={"correlation_id": correlation_id, "tenant_id": current.tenant_id,
                                           "profile_id": current.id, "kind": Kind.APP.value})
        return self.view(saved)

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
        if not profile.username:
            return None
        domain = profile.username.rpartition("@")[2].lower()
        labels = domain.split(".")
        if len(labels) >= 3 and labels[1] == "onmicrosoft":
            return self.endpoints.default_admin_center_url(labels[0])
        return None


def _tags(tenant_id: str, profile_id: str) -> dict[str, str]:
    return {"tenantId": tenant_id, "profileId": profile_id, "purpose": "service-account-password"}
