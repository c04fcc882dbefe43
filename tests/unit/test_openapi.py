"""The OpenAPI document is valid OpenAPI 3.1 and names every problem type the HTTP layer can send."""
from openapi_spec_validator import validate

from functions._http import ALL_PROBLEM_TYPES
from shared.openapi import document


def test_document_is_valid_openapi_3_1():
    validate(document(ALL_PROBLEM_TYPES))


def test_problem_types_are_listed():
    listed = {p["type"] for p in document(ALL_PROBLEM_TYPES)["components"]["x-problem-types"]}
    assert {"https://m365-profiles.dev/problems/validation", "https://m365-profiles.dev/problems/pool-exhausted",
            "https://m365-profiles.dev/problems/precondition-required"} <= listed
