"""App profiles for the suites that run against the local stack: the simulator's demo certificate
and an app profile made from it."""
from __future__ import annotations

import base64
import uuid
from pathlib import Path

#: The password of the simulator's ``demo-app.pfx``.
DEMO_PFX_PASSWORD = "demo"
#: "M365 Diagnostics (demo)": may read contoso's sign-in log and Conditional Access policies.
DIAGNOSIS_APP = "c0ffee00-0000-4000-8000-000000000003"


def demo_pfx(sim) -> str:
    """The PFX (base64) of the certificate the simulator registers on the demo apps."""
    return base64.b64encode(Path(sim.control.generated_certificate("demo-app")["pfxPath"]).read_bytes()).decode()


def add_app_profile(api, sim, tenant: str, client_id: str = DIAGNOSIS_APP, *, name: str = "app") -> dict:
    """An app profile of ``client_id`` in ``tenant`` with the demo certificate."""
    r = api.post(f"/api/tenants/{tenant}/profiles", json={
        "kind": "app", "name": f"{name} {uuid.uuid4().hex[:8]}", "clientId": client_id,
        "certificate": {"pfx": demo_pfx(sim), "password": DEMO_PFX_PASSWORD}})
    assert r.status_code == 201, r.text
    return r.json()
