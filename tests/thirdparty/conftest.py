"""Third-party SharePoint clients, unchanged, against the simulator.

Their code calls ``requests`` directly (module functions and fresh sessions), so the fixture
``routed_requests`` gives every ``requests.Session`` made during the test the product's resolve override
(:class:`shared.adapters.http_session.ResolvingAdapter`) and the simulator's CA (also where a
library passes ``verify=True``): the libraries keep the
real host names (``login.microsoftonline.com``, ``*.sharepoint.com``), TLS and Host headers, as in
production, and nothing in them is patched.
"""
from __future__ import annotations

import pytest
import requests

from shared.adapters.http_session import ResolvingAdapter, parse_address
from shared.cloud import endpoints_for


@pytest.fixture
def routed_requests(sim, monkeypatch):
    original = requests.sessions.Session.__init__
    mapped = endpoints_for("local").mapped_hosts
    address = parse_address(sim.endpoint)
    ca = str(sim.ca_path)

    class SimulatorAdapter(ResolvingAdapter):
        """The resolve override; a library's ``verify=True`` means the simulator's CA here."""

        def send(self, request, **kwargs):  # noqa: D102
            if kwargs.get("verify") in (True, None):
                kwargs["verify"] = ca
            return super().send(request, **kwargs)

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.trust_env = False
        self.verify = ca
        self.mount("https://", SimulatorAdapter(mapped, address))

    monkeypatch.setattr(requests.sessions.Session, "__init__", init)
    return sim
