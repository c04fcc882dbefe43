"""The CLI tests' runner: ``python -m cli`` in a subprocess, as a script runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.local_host import LOCAL_KEY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(app_host, tenant):
    """``cli(*args, env=None) -> CompletedProcess``: ``python -m cli`` for this test's tenant."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith("M365_PROFILES_")}
        full = {**base, "M365_PROFILES_URL": app_host.url, "M365_PROFILES_KEY": LOCAL_KEY,
                "M365_PROFILES_TENANT": tenant, "COLUMNS": "250", "NO_PROXY": "*", **(env or {})}
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, env=full, capture_output=True,
                              text=True, timeout=timeout)

    return run
