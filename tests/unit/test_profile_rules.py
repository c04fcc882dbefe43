"""Field rules of the spec's profile form (the contract's models plus the domain's cross-field
rules): every violated rule is reported at once."""
import json

import pytest

from shared.contract.base import parse_body
from shared.contract.profiles import ProfileCreate, ProfilePatch
from shared.domain.errors import InvalidInput
from shared.domain.profile import AdminCenterMode, Kind, Password, applicable_limitations, merge_patch


def parse_profile_input(body, *, require_password=True):
    model = ProfileCreate if require_password else ProfilePatch
    parsed = parse_body(model, json.dumps(body))
    return parsed.to_input() if require_password else parsed

VALID = {"name": "Contoso backup", "username": "admin@contoso.onmicrosoft.com", "password": "Demo-Passw0rd!"}
MFA = {**VALID, "mfaEnabled": True, "password": "qwertyuiopasdfgh",
       "adminCenter": {"mode": "custom", "url": "https://contoso-admin.sharepoint.com/"}}


def fields(body, *, require_password=True):
    with pytest.raises(InvalidInput) as info:
        parse_profile_input(body, require_password=require_password)
    return {(e.field, e.code) for e in info.value.errors}


def test_valid_common_profile_is_trimmed_and_defaults_apply():
    form = parse_profile_input({**VALID, "name": "  Contoso backup  "}, require_password=True)
    assert form.name == "Contoso backup"
    assert form.mfa_enabled is False and form.description == ""
    assert form.admin_center.mode is AdminCenterMode.DEFAULT and form.admin_center.url is None


def test_mfa_profile_keeps_custom_url_without_trailing_slash():
    form = parse_profile_input(MFA, require_password=True)
    assert form.admin_center.url == "https://contoso-admin.sharepoint.com"


def test_all_violations_come_back_together():
    got = fields({"name": " ", "username": "not-a-upn", "mfaEnabled": "yes", "description": 5,
                  "adminCenter": {"mode": "weird"}, "colour": "red"})
    assert got == {("name", "format"), ("username", "format"), ("mfaEnabled", "type"),
                   ("description", "type"), ("adminCenter.mode", "enum"), ("colour", "unknown"),
                   ("password", "required")}


@pytest.mark.parametrize("body, expected", [
    ({**VALID, "name": "x" * 129}, ("name", "length")),
    ({**VALID, "name": "bad\x07name"}, ("name", "format")),
    ({**VALID, "description": "d" * 1001}, ("description", "length")),
    ({**VALID, "username": "a" * 65 + "@contoso.com"}, ("username", "format")),
    ({**VALID, "password": ""}, ("password", "length")),
    ({**VALID, "name": "   "}, ("name", "format")),
    ({**VALID, "mfaEnabled": 1}, ("mfaEnabled", "type")),
    ({**VALID, "mfaEnabled": None}, ("mfaEnabled", "type")),
    ({**VALID, "password": "p" * 257}, ("password", "length")),
    ({**VALID, "adminCenter": {"mode": "custom"}}, ("adminCenter.url", "required")),
    ({**VALID, "adminCenter": {"mode": "custom", "url": "http://contoso-admin.sharepoint.com"}}, ("adminCenter.url", "format")),
    ({**VALID, "adminCenter": {"mode": "custom", "url": "https://x.sharepoint.com/?a=1"}}, ("adminCenter.url", "format")),
    ({**VALID, "adminCenter": {"mode": "default", "url": "https://x.sharepoint.com"}}, ("adminCenter.url", "notAllowed")),
    ({**VALID, "mfaEnabled": True}, ("adminCenter.mode", "mfaRequiresCustom")),
    ({**MFA, "adminCenter": {"mode": "custom", "url": ""}}, ("adminCenter.url", "required")),
])
def test_each_rule(body, expected):
    assert expected in fields(body)


def test_password_optional_on_patch_and_only_sent_fields_change():
    patch = parse_profile_input({"description": "new", "adminCenter": None}, require_password=False)
    assert patch.changes() == {"description": "new", "adminCenter": None}


def test_password_never_prints():
    form = parse_profile_input(VALID, require_password=True)
    assert "Demo-Passw0rd!" not in repr(form) and "Demo-Passw0rd!" not in str(form.password)
    assert form.password == Password("Demo-Passw0rd!")


def test_merge_patch_rfc7396():
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"a": None, "b": {"c": 5}, "e": [1]}) == \
        {"b": {"c": 5, "d": 3}, "e": [1]}


def test_limitations_come_from_the_catalog():
    assert applicable_limitations(Kind.COMMON) == ()
    assert applicable_limitations(Kind.MFA) == ("NO_INVITE_M365_USERS", "CLOUD_MANAGEMENT_FEATURES_LIMITED")
    assert "NO_GHOST_GUEST_USERS_RULE" in applicable_limitations(Kind.MFA, legacy_apps_blocked=True)
