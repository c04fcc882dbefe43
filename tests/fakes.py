"""In-memory fakes of the ports, for unit tests of the services above them.

Each fake subclasses its port and raises the same domain errors as the adapter; ``down = True``
makes every call raise DependencyUnavailable, as an adapter does when its service does not answer.
``tests/integration/test_port_contracts.py`` runs the same cases against each fake and its adapter.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

from shared.domain.errors import (DependencyUnavailable, NameConflict, NotFound, PreconditionFailed,
                                  ProfileNotFound, SecretMissing)
from shared.domain.ports import (CertificateStore, ExplanationQueue, JobRepository, OutcomePublisher, Page,
                                 PoolRepository, ProfileRepository, SecretStore, SignInDiagnostics, ValidationHistory,
                                 WebhookEventLog, WorkQueue)
from shared.domain.profile import LastValidation, Password, SecretRef, ServiceAccountProfile, name_key


class _Dependency:
    """``down`` and ``ping`` for every fake."""

    down = False
    dependency = "Table Storage"

    def _check(self) -> None:
        if self.down:
            raise DependencyUnavailable(self.dependency)

    def ping(self) -> None:
        self._check()


class FakeProfileRepository(_Dependency, ProfileRepository):
    def __init__(self):
        self.rows: dict[tuple[str, str], ServiceAccountProfile] = {}
        self._etags = itertools.count(1)
        self.fail_next_write = False

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    def _check_write(self) -> None:
        self._check()
        if self.fail_next_write:
            self.fail_next_write = False
            raise DependencyUnavailable("Table Storage")

    def add(self, profile):
        self._check_write()
        if self.name_exists(profile.tenant_id, profile.name):
            raise NameConflict(profile.name)
        saved = replace(profile, etag=self._etag())
        self.rows[(profile.tenant_id, profile.id)] = saved
        return saved

    def get(self, tenant_id, profile_id):
        self._check()
        if (tenant_id, profile_id) not in self.rows:
            raise ProfileNotFound(profile_id)
        return self.rows[(tenant_id, profile_id)]

    def update(self, profile, *, previous_name, etag):
        self._check_write()
        current = self.get(profile.tenant_id, profile.id)
        if current.etag != etag:
            raise PreconditionFailed()
        if self.name_exists(profile.tenant_id, profile.name, exclude_profile_id=profile.id):
            raise NameConflict(profile.name)
        saved = replace(profile, etag=self._etag())
        self.rows[(profile.tenant_id, profile.id)] = saved
        return saved

    def delete(self, tenant_id, profile_id, *, etag):
        self._check_write()
        if self.get(tenant_id, profile_id).etag != etag:
            raise PreconditionFailed()
        del self.rows[(tenant_id, profile_id)]

    def list(self, tenant_id, *, kind=None, last_status=None, page_size=50, continuation_token=None):
        from shared.domain.errors import FieldError, InvalidInput

        self._check()
        if continuation_token is not None and not str(continuation_token).isdigit():
            raise InvalidInput([FieldError("continuationToken", "format", "Not a token this API issued.")])
        items = sorted((p for (t, _), p in self.rows.items() if t == tenant_id), key=lambda p: p.id)
        if kind:
            items = [p for p in items if p.kind.value == kind]
        if last_status:
            items = [p for p in items if (p.last_validation.status if p.last_validation else "never") == last_status]
        start = int(continuation_token or 0)
        end = start + page_size
        return Page(items[start:end], str(end) if end < len(items) else None)

    def list_every_tenant(self):
        return list(self.rows.values())

    def name_exists(self, tenant_id, name, *, exclude_profile_id=None):
        return any(t == tenant_id and name_key(p.name) == name_key(name) and p.id != exclude_profile_id
                   for (t, _), p in self.rows.items())

    def record_validation(self, profile, last: LastValidation, *, legacy_apps_blocked=None, sharepoint_url=None,
                          certificate_alert=None):
        self._check()
        current = self.get(profile.tenant_id, profile.id)
        changes = {"last_validation": last}
        if legacy_apps_blocked is not None:
            changes["legacy_apps_blocked"] = legacy_apps_blocked
        if current.app is not None and (sharepoint_url is not None or certificate_alert is not None):
            app = current.app
            changes["app"] = replace(app, sharepoint_url=sharepoint_url or app.sharepoint_url,
                                     alert=app.alert if certificate_alert is None else certificate_alert)
        self.rows[(profile.tenant_id, profile.id)] = replace(current, etag=self._etag(), **changes)


class FakeSecretStore(SecretStore):
    """Versions per name, soft delete, as Key Vault: a deleted name reads as missing and cannot be
    set again until it is recovered."""

    def __init__(self):
        self.versions: dict[str, list[tuple[str, str, bool]]] = {}  # name -> [(version, value, enabled)]
        self.deleted: set[str] = set()
        self.down = False
        self.reads = 0

    def _check(self):
        if self.down:
            raise DependencyUnavailable("Key Vault", retry_after=7)

    def ping(self):
        self._check()

    def set_secret(self, name, value: Password, *, tags=None):
        self._check()
        if name in self.deleted:  # Key Vault: 409 ObjectIsDeletedButRecoverable
            raise DependencyUnavailable("Key Vault")
        version = f"v{len(self.versions.get(name, [])) + 1}"
        self.versions.setdefault(name, []).append((version, value.reveal(), True))
        return SecretRef(name, version)

    def get_secret(self, ref):
        self._check()
        self.reads += 1
        if ref.name not in self.deleted:
            for version, value, enabled in self.versions.get(ref.name, []):
                if version == ref.version and enabled:
                    return Password(value)
        raise SecretMissing(ref.name)

    def disable_version(self, ref):
        self._check()
        if ref.name in self.versions:
            self.versions[ref.name] = [(v, val, en and v != ref.version) for v, val, en in self.versions[ref.name]]

    def delete_secret(self, name):
        self._check()
        if name in self.versions:
            self.deleted.add(name)

    def recover_secret(self, name):
        self._check()
        self.deleted.discard(name)

    def get_values(self, name, *, limit=3):
        self._check()
        if name in self.deleted:
            return []
        return [value for _, value, enabled in reversed(self.versions.get(name, [])) if enabled][:limit]


class FakeCertificateStore(CertificateStore):
    """Versions per name as Key Vault keeps them; certificates are real self-signed X.509 (so PEM
    and thumbprints are real), keys stay inside (``sign_digest`` signs, nothing exports).
    ``exports`` stays 0: there is no operation that could raise it."""

    def __init__(self, clock=None):
        from datetime import datetime, timezone

        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self.versions: dict[str, list] = {}
        self.keys: dict[str, object] = {}
        self.deleted: set[str] = set()
        self.down = False
        self.signs = 0

    def _check(self):
        if self.down:
            raise DependencyUnavailable("Key Vault", retry_after=7)

    def ping(self):
        self._check()

    def _new(self, name, key, cert):
        from cryptography.hazmat.primitives import hashes, serialization

        from shared.domain.certificates import CertificateInfo, sha256_thumbprint

        self.deleted.discard(name)
        version = f"v{len(self.versions.get(name, [])) + 1}"
        der = cert.public_bytes(serialization.Encoding.DER)
        key_id = f"https://fake.vault/keys/{name}/{version}"
        self.keys[key_id] = key
        info = CertificateInfo(name=name, version=version, thumbprint=cert.fingerprint(hashes.SHA1()).hex(),
                               thumbprint_sha256=sha256_thumbprint(der), not_before=cert.not_valid_before_utc,
                               not_after=cert.not_valid_after_utc, key_id=key_id, cer=der)
        self.versions.setdefault(name, []).append(info)
        return info

    def create_certificate(self, name, *, subject, validity_months):
        from datetime import timedelta

        self._check()
        key, cert = make_certificate(subject, self._clock(), timedelta(days=30 * validity_months))
        return self._new(name, key, cert)

    def import_certificate(self, name, pfx, password):
        from cryptography.hazmat.primitives.serialization import pkcs12

        from shared.domain.errors import FieldError, InvalidInput

        self._check()
        try:
            key, cert, _ = pkcs12.load_key_and_certificates(pfx, password.reveal().encode() if password else None)
        except ValueError as exc:
            raise InvalidInput([FieldError("certificate.pfx", "format", "Key Vault could not read the PFX.")]) from exc
        return self._new(name, key, cert)

    def get_certificate(self, name, version=None):
        self._check()
        if name in self.deleted or name not in self.versions:
            raise NotFound("Certificate", name)
        versions = self.versions[name]
        found = [c for c in versions if c.version == version] if version else versions[-1:]
        if not found:
            raise NotFound("Certificate", name)
        return found[0]

    def sign_digest(self, key_id, digest):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        self._check()
        self.signs += 1
        return self.keys[key_id].sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))

    def delete_certificate(self, name):
        self._check()
        if name in self.versions:
            self.deleted.add(name)


def make_certificate(subject: str, now, validity):
    """A self-signed RSA certificate valid from ``now`` for ``validity`` (for tests' PFX files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject.removeprefix("CN="))])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + validity)
            .sign(key, hashes.SHA256()))
    return key, cert


class FakeJobRepository(_Dependency, JobRepository):
    """Jobs and items in memory with ETags, like ``TableJobRepository``."""

    def __init__(self):
        self.jobs = {}
        self.rows = {}  # (job, profile) -> (item, claimed_until, etag)
        self.tally_rows = {}  # (job, shard) -> JobTally
        self.writes = []  # items per write_items call (group commits)
        self._n = itertools.count(1)

    def add(self, job):
        self._check()
        if (job.tenant_id, job.id) in self.jobs:
            raise PreconditionFailed()
        self.jobs[(job.tenant_id, job.id)] = job

    def _write(self, item, claimed_until):
        etag = f"e{next(self._n)}"
        self.rows[(item.job_id, item.profile_id)] = (item, claimed_until, etag)
        return etag

    def create_item(self, item, *, claimed_until=None):
        self._check()
        if (item.job_id, item.profile_id) in self.rows:
            raise PreconditionFailed()
        return self._write(item, claimed_until)

    def write_items(self, job_id, writes, tally):
        """All or none, as the adapter's transaction: every precondition is checked first."""
        self._check()
        if not 0 < len(writes) <= 99 or len({i.profile_id for i, _ in writes}) != len(writes):
            raise ValueError("1 to 99 distinct items per write")
        for item, etag in writes:
            row = self.rows.get((item.job_id, item.profile_id))
            if (row is not None) if etag is None else (row is None or (etag != "*" and etag != row[2])):
                raise PreconditionFailed()
        self.writes.append(len(writes))
        etags = [self._write(item, None) for item, _ in writes]
        self.tally_rows[(job_id, tally.shard)] = tally
        return etags

    def tallies(self, job_id):
        self._check()
        return [t for (j, _), t in sorted(self.tally_rows.items()) if j == job_id]

    def get(self, tenant_id, job_id):
        self._check()
        try:
            return self.jobs[(tenant_id, job_id)]
        except KeyError:
            raise NotFound("Job", job_id) from None

    def mark_started(self, tenant_id, job_id, at):
        self._check()
        job = self.jobs.get((tenant_id, job_id))
        if job is not None and job.started_at is None:
            self.jobs[(tenant_id, job_id)] = replace(job, started_at=at)

    def items(self, job_id):
        self._check()
        return [replace(i, detail="") for (j, _), (i, _, _) in sorted(self.rows.items()) if j == job_id]

    def get_item(self, job_id, profile_id):
        self._check()
        try:
            return self.rows[(job_id, profile_id)]
        except KeyError:
            raise NotFound("Job item", f"{job_id}/{profile_id}") from None

    def save_item(self, item, *, etag, claimed_until=None):
        self._check()
        row = self.rows.get((item.job_id, item.profile_id))
        if row is None or (etag != "*" and etag != row[2]):
            raise PreconditionFailed()
        return self._write(item, claimed_until)


class FakePoolRepository(_Dependency, PoolRepository):
    """Pool members in memory with ETags, like ``TablePoolRepository``."""

    def __init__(self):
        self.rows = {}  # (tenant, profile) -> PoolMember with its etag
        self._n = itertools.count(1)

    def _etag(self) -> str:
        return f'W/"{next(self._n)}"'

    def members(self, tenant_id):
        self._check()
        return [m for (t, _), m in sorted(self.rows.items()) if t == tenant_id]

    def add_member(self, tenant_id, profile_id):
        from shared.domain.pool import PoolMember

        self._check()
        self.rows.setdefault((tenant_id, profile_id), PoolMember(profile_id, etag=self._etag()))

    def remove_member(self, tenant_id, profile_id):
        self._check()
        self.rows.pop((tenant_id, profile_id), None)

    def replace_member(self, tenant_id, member):
        self._check()
        current = self.rows.get((tenant_id, member.profile_id))
        if current is None or current.etag != member.etag:
            raise PreconditionFailed()
        saved = replace(member, etag=self._etag())
        self.rows[(tenant_id, member.profile_id)] = saved
        return saved


class FakeWorkQueue(_Dependency, WorkQueue):
    dependency = "Queue Storage"

    def __init__(self):
        self.sent = []  # (WorkMessage, delay)
        self.poison = []
        self.waiting = None  # what backlog() says (None: the messages sent)

    def send(self, message, *, delay_seconds=0):
        self._check()
        self.sent.append((message, max(0, int(delay_seconds))))

    def send_many(self, messages):
        self._check()
        pairs = [(m, max(0, int(d))) for m, d in messages]
        self.sent.extend(pairs)
        return len(pairs)

    def send_to_poison(self, text):
        self._check()
        self.poison.append(text)

    def backlog(self):
        self._check()
        return len(self.sent) if self.waiting is None else self.waiting


class FakeExplanationQueue(_Dependency, ExplanationQueue):
    dependency = "Queue Storage"

    def __init__(self):
        self.sent = []  # (ExplainMessage, delay)

    def send(self, message, *, delay_seconds):
        self._check()
        self.sent.append((message, max(0, int(delay_seconds))))


class FakeSignInDiagnostics(SignInDiagnostics):
    """A sign-in log that has ``entries`` (appearing once ``arrive()`` is called for them), policies
    by id, the security-defaults switch; ``refuse`` makes every call raise DiagnosisRefused."""

    def __init__(self):
        self.entries = []  # SignInEntry, visible
        self.late = []     # SignInEntry not yet ingested
        self.policy_facts = {}
        self.defaults = False
        self.refuse = None  # (reason, missing)
        self.calls = []

    def arrive(self):
        self.entries.extend(self.late)
        self.late.clear()

    def _check(self):
        from shared.domain.errors import DiagnosisRefused

        if self.refuse:
            raise DiagnosisRefused(*self.refuse)

    def find_sign_in(self, grant, *, correlation_id, user, app_id, since):
        self.calls.append(("find_sign_in", correlation_id, user, app_id))
        self._check()
        for entry in reversed(self.entries):
            if correlation_id and entry.correlation_id == correlation_id:
                return entry
        for entry in reversed(self.entries):
            if entry.created >= since and ((user and entry.user_principal_name == user) or
                                           (app_id and entry.app_id == app_id)) and entry.error_code:
                return entry
        return None

    def policies(self, grant, ids):
        self.calls.append(("policies", tuple(ids)))
        self._check()
        return {i: self.policy_facts[i] for i in ids if i in self.policy_facts}

    def security_defaults(self, grant):
        self.calls.append(("security_defaults",))
        self._check()
        return self.defaults


def _history_key(record):
    """The adapter's RowKey order: newest millisecond first, then record id."""
    return -int(record.at.timestamp() * 1000), record.record_id


class FakeHistory(_Dependency, ValidationHistory):
    def __init__(self):
        self.records = []
        self.outbox = []

    @staticmethod
    def _same(a, b) -> bool:
        return (a.tenant_id, a.profile_id, _history_key(a)) == (b.tenant_id, b.profile_id, _history_key(b))

    def add(self, record, *, publish):
        self._check()  # before any change: all or nothing, like the adapter's transaction
        self.records = [r for r in self.records if not self._same(r, record)] + [record]
        if publish:
            self.outbox = [r for r in self.outbox if not self._same(r, record)] + [record]

    def list(self, tenant_id, profile_id, *, limit=50):
        self._check()
        mine = [r for r in self.records if (r.tenant_id, r.profile_id) == (tenant_id, profile_id)]
        return sorted(mine, key=_history_key)[:max(0, limit)]

    def mark_published(self, record):
        self._check()
        self.outbox = [r for r in self.outbox if not self._same(r, record)]

    def unpublished(self, *, limit=100):
        self._check()
        return self.outbox[:max(0, limit)]


class FakePublisher(_Dependency, OutcomePublisher):
    dependency = "Queue Storage"

    def __init__(self):
        self.published = []
        self.explained = []
        self.down = False

    def publish(self, record):
        self._check()
        self.published.append(record)

    def publish_explained(self, record):
        self._check()
        self.explained.append(record)


class FakeWebhookEventLog(_Dependency, WebhookEventLog):
    def __init__(self):
        import threading

        self.seen = {}  # (portal, event id) -> event type
        self._lock = threading.Lock()  # check-and-insert is atomic, like the table's insert

    def try_record(self, portal_id, event_id, *, event_type):
        self._check()
        with self._lock:
            if (portal_id, event_id) in self.seen:
                return False
            self.seen[(portal_id, event_id)] = event_type
        return True

    def forget(self, portal_id, event_id):
        self._check()
        self.seen.pop((portal_id, event_id), None)
