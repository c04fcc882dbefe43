"""Session-wide fixtures. Service fixtures live in ``tests/fixtures/*.py`` and are loaded as plugins
(in dependency order: a plugin that imports another comes after it)."""
from __future__ import annotations

pytest_plugins = ["tests.fixtures.storage", "tests.fixtures.m365sim", "tests.fixtures.local_host",
                  "tests.fixtures.app"]
