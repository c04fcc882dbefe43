"""In-memory fakes of the ports, for unit tests of the services above them."""
from __future__ import annotations

import itertools
from dataclasses import replace

from shared.domain.errors import DependencyUnavailable, NameConflict, PreconditionFailed, ProfileNotFound
from shared.domain.ports import Page, ProfileRepository, SecretStore
from shared.domain.profile import LastValidation, Password, SecretRef, ServiceAccountProfile, name_key


class FakeProfileRepository(ProfileRepository):
    def __init__(self):
        self.rows: dict[tuple[str, str], ServiceAccountProfile] = {}
        self._etags = itertools.count(1)
        self.fail_next_write = False

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    def _check_write(self) -> None:
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
        try:
            return self.rows[(tenant_id, profile_id)]
        except KeyError:
            raise ProfileNotFound(profile_id) from None

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

    def record_validation(self, profile, last: LastValidation, *, legacy_apps_blocked=None):
        current = self.get(profile.tenant_id, profile.id)
        changes = {"last_validation": last}
        if legacy_apps_blocked is not None:
            changes["legacy_apps_blocked"] = legacy_apps_blocked
        self.rows[(profile.tenant_id, profile.id)] = replace(current, etag=self._etag(), **changes)


class FakeSecretStore(SecretStore):
    def __init__(self):
        self.versions: dict[str, list[tuple[str, str, bool]]] = {}  # name -> [(version, value, enabled)]
        self.deleted: set[str] = set()
        self.down = False
        self.reads = 0

    def _check(self):
        if self.down:
            raise DependencyUnavailable("Key Vault", retry_after=7)

    def set_secret(self, name, value: Password, *, tags=None):
        self._check()
        version = f"v{len(self.versions.get(name, [])) + 1}"
        self.versions.setdefault(name, []).append((version, value.reveal(), True))
        self.deleted.discard(name)
        return SecretRef(name, version)

    def get_secret(self, ref):
        self._check()
        self.reads += 1
        for version, value, enabled in self.versions[ref.name]:
            if version == ref.version and enabled:
                return Password(value)
        raise KeyError(ref)

    def disable_version(self, ref):
        self._check()
        self.versions[ref.name] = [(v, val, en and v != ref.version) for v, val, en in self.versions[ref.name]]

    def delete_secret(self, name):
        self._check()
        self.deleted.add(name)

    def recover_secret(self, name):
        self._check()
        self.deleted.discard(name)

    def get_values(self, name, *, limit=3):
        self._check()
        if name in self.deleted:
            return []
        return [value for _, value, enabled in reversed(self.versions.get(name, [])) if enabled][:limit]


class FakeJobRepository:
    """Jobs and items in memory with ETags, like ``TableJobRepository``."""

    def __init__(self):
        self.jobs = {}
        self.rows = {}  # (job, profile) -> (item, claimed_until, etag)
        self._n = itertools.count(1)

    def add(self, job):
        self.jobs[(job.tenant_id, job.id)] = job

    def create_item(self, item, *, claimed_until=None):
        if (item.job_id, item.profile_id) in self.rows:
            raise PreconditionFailed()
        etag = f"e{next(self._n)}"
        self.rows[(item.job_id, item.profile_id)] = (item, claimed_until, etag)
        return etag

    def get(self, tenant_id, job_id):
        from shared.domain.errors import NotFound

        try:
            return self.jobs[(tenant_id, job_id)]
        except KeyError:
            raise NotFound("Job", job_id) from None

    def mark_started(self, tenant_id, job_id, at):
        job = self.jobs[(tenant_id, job_id)]
        if job.started_at is None:
            self.jobs[(tenant_id, job_id)] = replace(job, started_at=at)

    def items(self, job_id):
        return [i for (j, _), (i, _, _) in self.rows.items() if j == job_id]

    def get_item(self, job_id, profile_id):
        from shared.domain.errors import NotFound

        try:
            return self.rows[(job_id, profile_id)]
        except KeyError:
            raise NotFound("Job item", profile_id) from None

    def save_item(self, item, *, etag, claimed_until=None):
        _, _, current = self.rows[(item.job_id, item.profile_id)]
        if etag != "*" and etag != current:
            raise PreconditionFailed()
        new = f"e{next(self._n)}"
        self.rows[(item.job_id, item.profile_id)] = (item, claimed_until, new)
        return new


class FakeWorkQueue:
    def __init__(self):
        self.sent = []  # (WorkMessage, delay)
        self.poison = []

    def send(self, message, *, delay_seconds=0):
        self.sent.append((message, delay_seconds))

    def send_many(self, messages):
        pairs = list(messages)
        self.sent.extend(pairs)
        return len(pairs)

    def send_to_poison(self, text):
        self.poison.append(text)


class FakeHistory:
    def __init__(self):
        self.records = []
        self.outbox = []

    def add(self, record, *, publish):
        self.records.append(record)
        if publish:
            self.outbox.append(record)

    def list(self, tenant_id, profile_id, *, limit=50):
        return [r for r in reversed(self.records) if (r.tenant_id, r.profile_id) == (tenant_id, profile_id)][:limit]

    def mark_published(self, record):
        self.outbox = [r for r in self.outbox if r.record_id != record.record_id]

    def unpublished(self, *, limit=100):
        return self.outbox[:limit]


class FakePublisher:
    def __init__(self):
        self.published = []
        self.down = False

    def publish(self, record):
        if self.down:
            raise DependencyUnavailable("Queue Storage")
        self.published.append(record)
