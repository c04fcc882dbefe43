"""Profiles in Table Storage: one partition per tenant, a name-index row per profile.

A name is unique per tenant because its name-index row is inserted before the profile row: of two
creates of one name, only one insert succeeds, and the other create is a name conflict. These are
two single-row inserts, not an entity-group transaction: a two-row transaction cost 8.9 ms of client
CPU against 2.3 ms per single insert (the multipart request and response through the ``email``
package), and creating profiles in bulk (an MSP onboarding thousands) is CPU-bound. A create holds
the name first (:meth:`TableProfileRepository.reserving`), so a taken name is refused by that insert,
with no read before it and before any secret or certificate is made. If the profile insert fails,
the name row is deleted again. If the process stops between the two inserts, the name row is left
without its profile: such a row, once older than :data:`ORPHAN_AFTER` (far longer than a create
takes), no longer holds the name; the next create of the name takes the row over (conditional on
its ETag, so one taker wins). A rename and a delete change several rows at once, so they stay one
transaction, and a rename never leaves two name rows behind. An update that keeps the name writes
the one row without a transaction (a transaction of one operation is the same write at about four
times the client CPU: the multipart request and response), conditional on the ETag (``If-Match``):
when this thread read that very version of the row (the read-modify-write of a PATCH), it merges
just the columns that differ, which leaves the row exactly as a full replace would; otherwise it
replaces the row. The table ETag is the profile's ETag.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import (AzureError, HttpResponseError,
                                   ResourceModifiedError, ResourceNotFoundError, ServiceRequestError,
                                   ServiceResponseError)
from azure.data.tables import UpdateMode

from shared.adapters.storage import TABLE_STORAGE, TableAdapter, storage_errors
from shared.domain.errors import (DependencyUnavailable, FieldError, InvalidInput, NameConflict, PreconditionFailed,
                                  ProfileNotFound)
from shared.domain.ports import Page, ProfileRepository
from shared.domain.certificates import CertificateInfo
from shared.domain.profile import (AdminCenter, AdminCenterMode, AppRegistration, HistoryEntry, LastValidation,
                                   SecretRef, ServiceAccountProfile, name_key)

PROFILE = "profile"
NAME_INDEX = "name"

#: A name row whose profile row is still missing this long after it was written was left by a
#: create that stopped between its two inserts (a create's requests time out within seconds).
ORPHAN_AFTER = timedelta(minutes=5)


def _name_row_key(name: str) -> str:
    return "name-" + hashlib.sha256(name_key(name).encode()).hexdigest()[:48]


def _reservation_key(tenant_id: str, name: str, profile_id: str) -> tuple[str, str, str]:
    return tenant_id, _name_row_key(name), profile_id


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _certificate_json(c: CertificateInfo | None) -> str:
    """A certificate's public facts and key id (never a key: Key Vault holds it)."""
    if c is None:
        return ""
    return json.dumps({"name": c.name, "version": c.version, "thumbprint": c.thumbprint,
                       "thumbprintSha256": c.thumbprint_sha256, "notBefore": c.not_before.isoformat(),
                       "notAfter": c.not_after.isoformat(), "keyId": c.key_id,
                       "cer": base64.b64encode(c.cer).decode()})


def _certificate(text: str | None) -> CertificateInfo | None:
    if not text:
        return None
    d = json.loads(text)
    return CertificateInfo(name=d["name"], version=d["version"], thumbprint=d["thumbprint"],
                           thumbprint_sha256=d["thumbprintSha256"], not_before=datetime.fromisoformat(d["notBefore"]),
                           not_after=datetime.fromisoformat(d["notAfter"]), key_id=d["keyId"],
                           cer=base64.b64decode(d["cer"]))


def _app_columns(app: AppRegistration | None) -> dict[str, Any]:
    return {"ClientId": app.client_id if app else "", "Workload": app.workload if app else "",
            "SharePointUrl": (app.sharepoint_url or "") if app else "",
            "Certificate": _certificate_json(app.certificate if app else None),
            "PreviousCertificate": _certificate_json(app.previous_certificate if app else None),
            "CertificateAlert": app.alert if app and app.alert is not None else -1}


def _app(e: dict[str, Any]) -> AppRegistration | None:
    if not e.get("ClientId") or not e.get("Certificate"):
        return None
    alert = e.get("CertificateAlert")
    return AppRegistration(client_id=e["ClientId"], certificate=_certificate(e["Certificate"]),
                           previous_certificate=_certificate(e.get("PreviousCertificate")),
                           workload=e.get("Workload") or "backup", sharepoint_url=e.get("SharePointUrl") or None,
                           alert=alert if isinstance(alert, int) and alert >= 0 else None)


def to_entity(p: ServiceAccountProfile) -> dict[str, Any]:
    lv = p.last_validation
    return {**_app_columns(p.app),
        "PartitionKey": p.tenant_id, "RowKey": p.id, "EntityType": PROFILE,
        "Name": p.name, "NameKey": name_key(p.name), "Description": p.description,
        "MfaEnabled": p.mfa_enabled, "Kind": p.kind.value, "Username": p.username,
        "AdminCenterMode": p.admin_center.mode.value, "AdminCenterUrl": p.admin_center.url or "",
        "SecretName": p.secret.name if p.secret else "", "SecretVersion": p.secret.version if p.secret else "",
        "PasswordUpdatedAt": p.password_updated_at, "CreatedAt": p.created_at, "UpdatedAt": p.updated_at,
        "LastValidationStatus": lv.status if lv else "", "LastValidationMessageId": (lv.message_id or "") if lv else "",
        "LastValidationAt": lv.at if lv else None, "LastValidationJobId": (lv.job_id or "") if lv else "",
        "LegacyAppsBlocked": p.legacy_apps_blocked,
        "History": json.dumps([h.to_dict() for h in p.history]),
    }


def from_entity(e: dict[str, Any]) -> ServiceAccountProfile:
    lv = None
    if e.get("LastValidationStatus"):
        lv = LastValidation(e["LastValidationStatus"], e.get("LastValidationMessageId") or None,
                            _utc(e["LastValidationAt"]), job_id=e.get("LastValidationJobId") or None)
    history = tuple(HistoryEntry(datetime.fromisoformat(h["at"]), h["event"], h.get("detail", ""))
                    for h in json.loads(e.get("History") or "[]"))
    return ServiceAccountProfile(
        id=e["RowKey"], tenant_id=e["PartitionKey"], name=e["Name"], description=e.get("Description", ""),
        mfa_enabled=bool(e["MfaEnabled"]), username=e["Username"],
        admin_center=AdminCenter(AdminCenterMode(e["AdminCenterMode"]), e.get("AdminCenterUrl") or None),
        secret=SecretRef(e["SecretName"], e["SecretVersion"]) if e.get("SecretName") else None,
        password_updated_at=_utc(e.get("PasswordUpdatedAt")), created_at=_utc(e["CreatedAt"]),
        updated_at=_utc(e["UpdatedAt"]), last_validation=lv,
        legacy_apps_blocked=bool(e.get("LegacyAppsBlocked", False)), history=history, app=_app(e),
        etag=e.metadata.get("etag") if hasattr(e, "metadata") else None)


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


_TOKEN_KEYS = ("PartitionKey", "RowKey")


def _bad_token() -> InvalidInput:
    return InvalidInput([FieldError("continuationToken", "format", "Not a token this API issued.")])


def _decode_token(token: str | None) -> Any:
    """The SDK's continuation token (``{"PartitionKey": str, "RowKey": str}``) from ours; 422 for
    anything else (JSON that is not that object would reach the SDK and the request headers)."""
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, RecursionError) as exc:
        raise _bad_token() from exc
    if (not isinstance(value, dict) or not value or set(value) - set(_TOKEN_KEYS)
            or not all(v is None or (isinstance(v, str) and v.isprintable()) for v in value.values())):
        raise _bad_token()
    return value


def _unavailable(exc: AzureError) -> DependencyUnavailable:
    """Storage did not answer (after the client's own retries): the caller gets a 503."""
    return DependencyUnavailable("Table Storage", retry_after=5)


def _write_refused(exc: HttpResponseError) -> PreconditionFailed | NameConflict | None:
    """What a refused write means: 412 (the ETag is stale) or 404 (the row is gone) is a failed
    precondition, 409 a taken name (the caller names it); None for anything else (raised as it is)."""
    code = str(getattr(exc, "error_code", None) or "")
    if exc.status_code == 412 or "UpdateConditionNotSatisfied" in code:
        return PreconditionFailed()
    if exc.status_code == 409 or "EntityAlreadyExists" in code:
        return NameConflict("")
    if exc.status_code == 404:
        return PreconditionFailed()
    return None


def _same_value(stored: Any, value: Any) -> bool:
    """Whether the stored column already holds ``value`` with the type a write of it would give
    (bool, int, str and datetime columns; anything else counts as different and is written)."""
    if isinstance(value, datetime):
        return isinstance(stored, datetime) and stored.tzinfo is not None and stored == value
    if type(value) in (bool, int, str):
        return type(stored) is type(value) and stored == value
    return False


def _changed_columns(row: Any, entity: dict[str, Any]) -> dict[str, Any] | None:
    """The columns of ``entity`` that differ from the stored ``row`` (with the keys), which a merge
    writes to leave the row as a replace with ``entity`` would; None when only a replace can (the row
    has a column ``entity`` leaves out: the SDK sends no None value, so a replace drops it)."""
    written = {k: v for k, v in entity.items() if v is not None}
    if set(row) - set(written):
        return None
    changed = {k: v for k, v in written.items() if k not in row or not _same_value(row[k], v)}
    return {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"], **changed}


@contextmanager
def _write_errors() -> Iterator[None]:
    """A write's refusals (412, 404, 409: :func:`_write_refused`) and outages as the domain names
    them; a transaction's error (``TableTransactionError``) is an ``HttpResponseError`` too."""
    try:
        yield
    except HttpResponseError as exc:
        refused = _write_refused(exc)
        if refused is None:
            raise
        raise refused from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise _unavailable(exc) from exc


class TableProfileRepository(TableAdapter, ProfileRepository):
    def __init__(self, table, *, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        super().__init__(table)
        self._clock = clock  # for the age of a name row without its profile (ORPHAN_AFTER)
        #: Name rows written by :meth:`reserving` for the add() in its block: their ETags.
        self._reserved: dict[tuple[str, str, str], str] = {}
        #: The profile row this thread read last (:meth:`get`), for the update that follows it.
        self._read = threading.local()

    def _transaction(self, operations: list) -> list:
        with _write_errors():
            return self._table.submit_transaction(operations)

    def _write_row(self, entity: dict[str, Any], etag: str) -> dict[str, Any]:
        """Write one profile row as ``entity`` if its ETag is still ``etag``: a merge of the changed
        columns when this thread read that version (:meth:`get`), else a replace. Refusals and outages
        map as in :meth:`_transaction` (the operation's error is what a transaction of it reports)."""
        row, self._read.row = getattr(self._read, "row", None), None
        changed = None
        if (row is not None and row.metadata.get("etag") == etag and row.get("PartitionKey") == entity["PartitionKey"]
                and row.get("RowKey") == entity["RowKey"]):
            changed = _changed_columns(row, entity)  # the row is that version: the ETag says so
        with _write_errors():
            return self._table.update_entity(changed if changed is not None else entity,
                                             mode=UpdateMode.MERGE if changed is not None else UpdateMode.REPLACE,
                                             etag=etag, match_condition=MatchConditions.IfNotModified)

    def add(self, profile: ServiceAccountProfile) -> ServiceAccountProfile:
        """The name row (unless :meth:`reserving` holds it already), then the profile row (module
        docstring); the name row is deleted again when the profile row cannot be written."""
        name_etag = self._reserved.pop(_reservation_key(profile.tenant_id, profile.name, profile.id), None)
        if name_etag is None:
            name_etag = self._reserve_name(profile.tenant_id, profile.name, profile.id)
        try:
            with _write_errors():
                created = self._table.create_entity(to_entity(profile))
        except BaseException:
            self._release_name(profile.tenant_id, profile.name, name_etag)
            raise
        return _with_etag(profile, created)

    @contextmanager
    def reserving(self, tenant_id: str, name: str, profile_id: str) -> Iterator[None]:
        """The name row first: a taken name fails before the block runs, without a read first."""
        key = _reservation_key(tenant_id, name, profile_id)
        self._reserved[key] = self._reserve_name(tenant_id, name, profile_id)
        try:
            yield
        except BaseException:
            etag = self._reserved.pop(key, None)
            if etag is not None:  # the block failed before add() took the name row over
                self._release_name(tenant_id, name, etag)
            raise
        else:
            self._reserved.pop(key, None)  # a block that never called add(): nothing is held after it

    def _reserve_name(self, tenant_id: str, name: str, profile_id: str) -> str:
        """Insert the profile's name row, or take over one left without its profile; its ETag.

        :raises NameConflict: the name belongs to a profile, or to a create still under way.
        """
        name_row = {"PartitionKey": tenant_id, "RowKey": _name_row_key(name),
                    "EntityType": NAME_INDEX, "ProfileId": profile_id}
        for _ in range(2):  # a second insert when the conflicting row is gone by the time it is read
            try:
                with _write_errors():
                    return self._table.create_entity(name_row)["etag"]
            except NameConflict as exc:
                taken = exc
            with storage_errors(TABLE_STORAGE):
                try:
                    current = self._table.get_entity(tenant_id, name_row["RowKey"])
                except ResourceNotFoundError:
                    continue
            if not self._is_orphan(current):
                break
            try:
                with _write_errors():
                    return self._table.update_entity(name_row, mode=UpdateMode.REPLACE,
                                                     etag=current.metadata["etag"],
                                                     match_condition=MatchConditions.IfNotModified)["etag"]
            except PreconditionFailed as exc:  # another create took it over first
                raise NameConflict(name) from exc
        raise NameConflict(name) from taken.__cause__

    def _is_orphan(self, name_row: Any) -> bool:
        """Whether ``name_row`` is older than :data:`ORPHAN_AFTER` and its profile row missing."""
        written = name_row.metadata.get("timestamp")
        if written is None or self._clock() - written < ORPHAN_AFTER:
            return False
        with storage_errors(TABLE_STORAGE):
            try:
                owner = self._table.get_entity(name_row["PartitionKey"], name_row.get("ProfileId") or "-",
                                               select=["EntityType"])
            except ResourceNotFoundError:
                return True
        return owner.get("EntityType") != PROFILE

    def _release_name(self, tenant_id: str, name: str, etag: str) -> None:
        """Delete the name row that :meth:`_reserve_name` wrote, if it is still that version; a
        failure leaves it to :data:`ORPHAN_AFTER`."""
        try:
            self._table.delete_entity(tenant_id, _name_row_key(name), etag=etag,
                                      match_condition=MatchConditions.IfNotModified)
        except AzureError:
            pass

    def get(self, tenant_id: str, profile_id: str) -> ServiceAccountProfile:
        try:
            entity = self._table.get_entity(tenant_id, profile_id)
        except ResourceNotFoundError as exc:
            raise ProfileNotFound(profile_id) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise _unavailable(exc) from exc
        if entity.get("EntityType") != PROFILE:
            raise ProfileNotFound(profile_id)
        self._read.row = entity
        return from_entity(entity)

    def update(self, profile: ServiceAccountProfile, *, previous_name: str, etag: str) -> ServiceAccountProfile:
        entity = to_entity(profile)
        old_key, new_key = _name_row_key(previous_name), _name_row_key(profile.name)
        if old_key == new_key:  # the name index row stays: one row, one conditional write
            return _with_etag(profile, self._write_row(entity, etag))
        ops: list = [("update", entity,
                      {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}),
                     ("delete", {"PartitionKey": profile.tenant_id, "RowKey": old_key}),
                     ("create", {"PartitionKey": profile.tenant_id, "RowKey": new_key,
                                 "EntityType": NAME_INDEX, "ProfileId": profile.id})]
        try:
            results = self._transaction(ops)
        except NameConflict as exc:
            raise NameConflict(profile.name) from exc.__cause__
        return _with_etag(profile, results[0])

    def delete(self, tenant_id: str, profile_id: str, *, etag: str) -> None:
        current = self.get(tenant_id, profile_id)
        self._transaction([
            ("delete", {"PartitionKey": tenant_id, "RowKey": profile_id},
             {"etag": etag, "match_condition": MatchConditions.IfNotModified}),
            ("delete", {"PartitionKey": tenant_id, "RowKey": _name_row_key(current.name)}),
        ])

    def list(self, tenant_id: str, *, kind: str | None = None, last_status: str | None = None,
             page_size: int = 50, continuation_token: str | None = None) -> Page:
        clauses = ["PartitionKey eq @tenant", "EntityType eq @type"]
        params: dict[str, Any] = {"tenant": tenant_id, "type": PROFILE}
        if kind:
            clauses.append("Kind eq @kind")
            params["kind"] = kind
        if last_status:
            clauses.append("LastValidationStatus eq @status")
            params["status"] = "" if last_status == "never" else last_status
        pager = self._table.query_entities(" and ".join(clauses), parameters=params,
                                           results_per_page=page_size).by_page(
            continuation_token=_decode_token(continuation_token))
        try:
            with storage_errors(TABLE_STORAGE):
                items = [from_entity(e) for e in next(pager, [])]
        except HttpResponseError as exc:
            if exc.status_code == 400 and continuation_token:
                raise _bad_token() from exc
            raise
        return Page(items, _encode_token(pager.continuation_token))

    def list_every_tenant(self):
        for entity in self._table.query_entities("EntityType eq @type", parameters={"type": PROFILE}):
            yield from_entity(entity)

    def name_exists(self, tenant_id: str, name: str, *, exclude_profile_id: str | None = None) -> bool:
        """Whether another profile holds ``name`` (a name row left without its profile past
        :data:`ORPHAN_AFTER` holds nothing)."""
        try:
            row = self._table.get_entity(tenant_id, _name_row_key(name))
        except ResourceNotFoundError:
            return False
        return row.get("ProfileId") != exclude_profile_id and not self._is_orphan(row)

    def record_validation(self, profile: ServiceAccountProfile, last: LastValidation, *,
                          legacy_apps_blocked: bool | None = None, sharepoint_url: str | None = None,
                          certificate_alert: int | None = None) -> None:
        """Merge the last validation into the row without touching user-edited fields."""
        patch: dict[str, Any] = {"PartitionKey": profile.tenant_id, "RowKey": profile.id,
                                 "LastValidationStatus": last.status,
                                 "LastValidationMessageId": last.message_id or "",
                                 "LastValidationAt": last.at, "LastValidationJobId": last.job_id or ""}
        if legacy_apps_blocked is not None:
            patch["LegacyAppsBlocked"] = legacy_apps_blocked
        if sharepoint_url is not None:
            patch["SharePointUrl"] = sharepoint_url
        if certificate_alert is not None:
            patch["CertificateAlert"] = certificate_alert
        try:
            self._table.update_entity(patch, mode=UpdateMode.MERGE)
        except ResourceNotFoundError as exc:
            raise ProfileNotFound(profile.id) from exc
        except ResourceModifiedError as exc:  # pragma: no cover - MERGE without etag does not conflict
            raise PreconditionFailed() from exc


def _with_etag(profile: ServiceAccountProfile, metadata: Any) -> ServiceAccountProfile:
    from dataclasses import replace

    return replace(profile, etag=metadata.get("etag"))

