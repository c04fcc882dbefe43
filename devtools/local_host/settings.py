"""App settings as the Functions host sees them: ``local.settings.json`` plus the environment.

Core Tools puts ``Values`` into the worker's environment before the app is imported; a variable
that is already set in the environment wins. ``%NAME%`` binding expressions resolve against the
same settings.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

logger = logging.getLogger(__name__)

SAMPLE_FILE_NAME = "local.settings.sample.json"
KEY_SETTING = "LOCAL_FUNCTION_KEY"
_EXPRESSION = re.compile(r"%([^%]+)%")


class SettingNotFound(LookupError):
    """A ``%NAME%`` binding expression names a setting that does not exist."""


@dataclass(frozen=True)
class LocalSettingsFile:
    """What was read from a ``local.settings.json``-shaped file."""

    values: dict[str, str] = field(default_factory=dict)
    host: dict[str, object] = field(default_factory=dict)
    path: Path | None = None

    @property
    def local_http_port(self) -> int | None:
        port = self.host.get("LocalHttpPort")
        return int(port) if port not in (None, "") else None


def read_local_settings(path: str | Path) -> LocalSettingsFile:
    """Read ``path``; when it is missing, fall back to ``local.settings.sample.json`` beside it.

    :return: the values (all as strings) and the ``Host`` section; empty when neither file exists.
    :raises ValueError: when the file says ``IsEncrypted: true`` (Core Tools would decrypt it).
    """
    path = Path(path)
    if not path.exists():
        sample = path.with_name(SAMPLE_FILE_NAME)
        if path.name != SAMPLE_FILE_NAME and sample.exists():
            logger.warning("%s not found: using %s (copy it to %s to customise)", path, sample, path.name)
            path = sample
        else:
            logger.warning("%s not found: starting with the environment's settings only", path)
            return LocalSettingsFile()
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("IsEncrypted"):
        raise ValueError(f"{path} is encrypted; the local host reads only plain-text settings")
    values = {str(k): "" if v is None else str(v) for k, v in (raw.get("Values") or {}).items()}
    return LocalSettingsFile(values=values, host=dict(raw.get("Host") or {}), path=path)


def apply_to_environ(values: Mapping[str, str], environ: os._Environ | dict | None = None) -> dict[str, str]:
    """Put ``values`` into the environment where a variable is not set already (environment wins).

    :return: the settings now in effect for those names.
    """
    environ = os.environ if environ is None else environ
    for name, value in values.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in values}


class AppSettings:
    """Read-only view of the app settings: explicit ``values`` first, then the environment."""

    def __init__(self, values: Mapping[str, str] | None = None, *, environ: Mapping[str, str] | None = None):
        self._values = dict(values or {})
        self._environ = os.environ if environ is None else environ

    @property
    def explicit(self) -> dict[str, str]:
        """The values given explicitly (not those that come from the environment)."""
        return dict(self._values)

    def get(self, name: str, default: str | None = None) -> str | None:
        if name in self._values:
            return self._values[name]
        return self._environ.get(name, default)

    def resolve(self, text: str) -> str:
        """Replace every ``%NAME%`` in ``text`` with the setting's value.

        :raises SettingNotFound: when a named setting does not exist (the host fails indexing).
        """
        def substitute(match: re.Match) -> str:
            value = self.get(match.group(1))
            if value is None:
                raise SettingNotFound(f"'{match.group(0)}' does not resolve to a value")
            return value

        return _EXPRESSION.sub(substitute, text)

    def is_disabled(self, function_name: str) -> bool:
        """``AzureWebJobs.<name>.Disabled`` set to true/1 disables a function, as on Azure."""
        value = self.get(f"AzureWebJobs.{function_name}.Disabled") or ""
        return value.strip().lower() in ("true", "1")

    @property
    def keys(self) -> frozenset[str]:
        """Keys accepted for both function and admin auth level (DESIGN §6: one local key)."""
        key = self.get(KEY_SETTING)
        return frozenset([key]) if key else frozenset()
