"""Thin triggers: parse the request, call a service in ``shared``, shape the response."""
from __future__ import annotations

import azure.functions as func


def blueprints() -> list[func.Blueprint]:
    from functions import health, openapi, pool, profiles, webhooks

    return [health.bp, openapi.bp, pool.bp, profiles.bp, webhooks.bp]
