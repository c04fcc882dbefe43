"""The OpenAPI document is generated from the contract: valid OpenAPI 3.1, every route of the app,
every problem type, every catalog message id and every domain enum value, never retyped."""
import json

from openapi_spec_validator import validate

from shared.contract.openapi import document
from shared.contract.problems import ALL_PROBLEM_TYPES
from shared.contract.routes import OPERATIONS
from shared.domain.jobs import JobState, Reason
from shared.domain.profile import AdminCenterMode, Kind, limitation_catalog
from shared.domain.troubleshooting import load_catalog
from shared.domain.validation import CHECK_NAMES, CHECK_STATUSES, LAST_STATUSES, SIGN_IN_PATHS
from tests.inprocess import app_functions


def test_document_is_valid_openapi_3_1():
    validate(document())


def test_problem_types_are_listed():
    listed = {p["type"] for p in document()["components"]["x-problem-types"]}
    assert listed == {p.uri for p in ALL_PROBLEM_TYPES}


def enum_values(node):
    """Every value of every ``enum``/``const`` anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "enum":
                yield from value
            elif key == "const":
                yield value
            else:
                yield from enum_values(value)
    elif isinstance(node, list):
        for value in node:
            yield from enum_values(value)


def test_every_message_id_and_enum_value_is_in_the_document():
    values = set(enum_values(document()))
    expected = {*load_catalog().messages, *limitation_catalog(), *(k.value for k in Kind),
                *(m.value for m in AdminCenterMode), *(s.value for s in JobState), *(r.value for r in Reason),
                *LAST_STATUSES, *CHECK_NAMES, *CHECK_STATUSES, *SIGN_IN_PATHS}
    assert expected - values == set()
    message_ids = document()["components"]["schemas"]["ValidationOutcome"]["properties"]["messageId"]
    assert set(load_catalog().messages) <= set(enum_values(message_ids))


def test_every_registered_http_function_is_an_operation_of_the_route_table():
    registered = set()
    for fn in app_functions():
        trigger = fn.get_trigger()
        if trigger.get_binding_name() == "httpTrigger":
            registered.add((trigger.route, tuple(m.value if hasattr(m, "value") else m for m in trigger.methods)))
    table = {(op.route, (op.method,)) for op in OPERATIONS}
    assert registered == table


def test_document_is_json():
    json.dumps(document())
