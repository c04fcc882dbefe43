"""Thin triggers: parse the request, call a service in ``shared``, shape the response."""
from __future__ import annotations

import azure.functions as func


def blueprints() -> list[func.Blueprint]:
    from functions import (admin, explanations, health, jobs, openapi, outbox, pool, profiles, reserved_ips, validation,
                           webhooks)

    return [admin.bp, health.bp, openapi.bp, profiles.bp, validation.bp, jobs.bp, outbox.bp, pool.bp, reserved_ips.bp,
            webhooks.bp, explanations.bp]
