"""Thin triggers: parse the request, call a service in ``shared``, shape the response."""
from __future__ import annotations

import azure.functions as func


def blueprints() -> list[func.Blueprint]:
    from functions import health, openapi, profiles, webhooks

    return [health.bp, openapi.bp, profiles.bp, webhooks.bp]
