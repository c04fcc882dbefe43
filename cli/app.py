"""python -m cli: profiles (MFA, common and app profiles with their certificates), batch jobs, the
account pool and the reserved IP addresses from a terminal.

Every command talks to the HTTP API at --url with the function key --key (or the environment
variables M365_PROFILES_URL, M365_PROFILES_KEY, M365_PROFILES_TENANT) and takes --json
to print the API's JSON instead of tables.

Exit codes: 0 done (every validation passed), 1 a validation failed or ended in error, 2 a usage
error, an answer of the API that refuses the request, or no answer at all.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from cli.client import ApiError, ProfilesClient

OK, FAILED, USAGE = 0, 1, 2
FINAL_STATES = ("completed", "completedWithErrors")
KINDS = ("mfa", "common", "app")
STATUSES = ("passed", "failed", "error", "never")
CSV_COLUMNS = ("id", "name", "kind", "username", "mfaEnabled", "adminCenterMode", "adminCenterUrl",
               "lastStatus", "lastMessageId", "lastValidatedAt", "limitations", "description")

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
profiles_app = typer.Typer(help="List, show, create, validate profiles; their history; app profiles' "
                                "certificates, rotation and migration.", no_args_is_help=True)
jobs_app = typer.Typer(help="Batch validation jobs: start one, watch its progress.", no_args_is_help=True)
pool_app = typer.Typer(help="The tenant's account pool: members, leases.", no_args_is_help=True)
ips_app = typer.Typer(help="The service's reserved IP addresses (exclude them from access policies).",
                      no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(jobs_app, name="jobs")
app.add_typer(pool_app, name="pool")
app.add_typer(ips_app, name="reserved-ips")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = typer.Option(False, "--json", help="Print the API's JSON instead of tables.")


class Context:
    def __init__(self, url: str, key: str, tenant: Optional[str]):
        self.client = ProfilesClient(url, key)
        self._tenant = tenant

    @property
    def tenant(self) -> str:
        if not self._tenant:
            fail("No tenant: pass --tenant or set M365_PROFILES_TENANT.")
        return self._tenant


def fail(message: str, code: int = USAGE):
    err.print(message, markup=False, highlight=False)
    raise typer.Exit(code)


def ctx_of(ctx: typer.Context) -> Context:
    return ctx.obj


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


@app.callback()
def root(ctx: typer.Context,
         url: str = typer.Option("http://127.0.0.1:7071", "--url", envvar="M365_PROFILES_URL",
                                 help="Base URL of the service (without /api)."),
         key: str = typer.Option("", "--key", envvar="M365_PROFILES_KEY", help="The function key."),
         tenant: Optional[str] = typer.Option(None, "--tenant", "-t", envvar="M365_PROFILES_TENANT",
                                              help="The Microsoft 365 tenant ID.")):
    ctx.obj = Context(url, key, tenant)


def main() -> None:
    try:
        app(prog_name="python -m cli")
    except ApiError as exc:  # raised outside a command's own handling
        for line in exc.lines():
            err.print(line, markup=False, highlight=False)
        sys.exit(USAGE)


def abort(exc: ApiError):
    """End the command with exit code 2, printing the problem."""
    for line in exc.lines():
        err.print(line, markup=False, highlight=False)
    raise typer.Exit(USAGE) from exc


def api_call(fn, *args, **kwargs):
    """Call the API; a refusal or no answer ends the command with exit code 2 and the problem."""
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        abort(exc)


# ---------------------------------------------------------------------------------- profiles

def _last(p: dict[str, Any]) -> str:
    lv = p.get("lastValidation")
    if not lv:
        return "never"
    return lv["status"] + (f" {lv['messageId']}" if lv.get("messageId") else "")


def _identity(p: dict[str, Any]) -> str:
    """The username; for an app profile its client id (a migrated one keeps its old username)."""
    if p.get("kind") == "app":
        return p.get("clientId") or ""
    return p.get("username") or p.get("clientId") or ""


def _days_left(cert: Optional[dict[str, Any]]) -> str:
    if not cert:
        return ""
    days = cert["daysLeft"]
    if days < 0:
        return f"expired {-days} day(s) ago"
    warning = " (expires within 30 days: rotate it)" if days <= 30 else ""
    return f"{days} day(s) left{warning}"


def _permissions(perms: Optional[dict[str, list[str]]]) -> str:
    if perms is None:
        return "(not known)"
    parts = [f"{label}: {', '.join(perms.get(key) or []) or 'none'}"
             for key, label in (("graph", "Microsoft Graph"), ("sharepoint", "SharePoint"))]
    return "; ".join(parts)


def _csv_row(p: dict[str, Any]) -> dict[str, Any]:
    lv, ac = p.get("lastValidation") or {}, p.get("adminCenter") or {}
    return {"id": p["id"], "name": p["name"], "kind": p.get("kind"), "username": _identity(p),
            "mfaEnabled": str(bool(p.get("mfaEnabled"))).lower(), "adminCenterMode": ac.get("mode"),
            "adminCenterUrl": ac.get("url") or "", "lastStatus": lv.get("status", "never"),
            "lastMessageId": lv.get("messageId") or "", "lastValidatedAt": lv.get("at") or "",
            "limitations": " ".join(p.get("limitations") or []), "description": p.get("description") or ""}


def _select(c: Context, kind: Optional[str], status: Optional[str], search: Optional[str]) -> list[dict[str, Any]]:
    if kind and kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}.")
    if status and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}.")
    items = list(api_call(lambda: list(c.client.list_profiles(c.tenant, kind=kind, last_status=status))))
    if search:
        needle = search.lower()
        items = [p for p in items if needle in p["name"].lower() or needle in _identity(p).lower()]
    return items


@profiles_app.command("list")
def profiles_list(ctx: typer.Context,
                  kind: Optional[str] = typer.Option(None, help="mfa, common or app."),
                  status: Optional[str] = typer.Option(None, help="Last validation: passed, failed, error, never."),
                  search: Optional[str] = typer.Option(None, help="Part of the name or username (any case)."),
                  export: Optional[Path] = typer.Option(None, "--export", help="Write the list as CSV to this file."),
                  as_json: bool = JsonFlag):
    """List the tenant's profiles (every page), filtered; optionally export them as CSV."""
    c = ctx_of(ctx)
    items = _select(c, kind, status, search)
    if export:
        with export.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(_csv_row(p) for p in items)
    if as_json:
        emit_json({"items": items, "count": len(items)})
        return
    table = Table(title=f"{len(items)} profile(s) of tenant {c.tenant}")
    for col in ("Name", "Kind", "Username / client ID", "Last validation", "Limitations", "ID"):
        table.add_column(col, overflow="fold")
    for p in items:
        table.add_row(p["name"], p.get("kind", ""), _identity(p), _last(p), str(len(p.get("limitations") or [])), p["id"])
    out.print(table)
    if export:
        err.print(f"Wrote {len(items)} row(s) to {export}", markup=False)


@profiles_app.command("show")
def profiles_show(ctx: typer.Context, profile_id: str, as_json: bool = JsonFlag):
    """One profile with its limitations, guidance and change history."""
    c = ctx_of(ctx)
    p = api_call(c.client.get_profile, c.tenant, profile_id)
    if as_json:
        emit_json(p)
        return
    table = Table(show_header=False, title=p["name"])
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    ac = p.get("adminCenter") or {}
    if p.get("kind") == "app":
        cert, previous = p.get("certificate") or {}, p.get("previousCertificate")
        rows = [("ID", p["id"]), ("Kind", "app"), ("Client ID", p.get("clientId")),
                ("Description", p.get("description")), ("Workload", p.get("workload")),
                ("SharePoint URL", p.get("sharePointUrl") or "(found by the Validation Test)"),
                ("Certificate", f"{cert.get('thumbprint', '').upper()} valid until {cert.get('notAfter')}, "
                                f"{_days_left(cert)}" if cert else ""),
                ("Previous certificate", f"{previous['thumbprint'].upper()} (accepted until the new one signs in)"
                 if previous else None),
                ("Certificate URL", c.client.base_url + p["certificateUrl"] if p.get("certificateUrl") else None),
                ("Admin consent", p.get("adminConsentUrl")),
                ("Required permissions", _permissions(p.get("requiredPermissions"))),
                ("Last validation", _last(p))]
    else:
        rows = [("ID", p["id"]), ("Kind", p.get("kind")), ("Username", _identity(p)),
                ("Description", p.get("description")), ("MFA", str(p.get("mfaEnabled"))),
                ("Admin center", f"{ac.get('mode')} {ac.get('effectiveUrl') or ''}".strip()),
                ("Password set", str(p.get("passwordSet"))), ("Last validation", _last(p))]
    for k, v in rows:
        if v is not None:
            table.add_row(k, v or "")
    for lim in p.get("limitationDetails") or []:
        table.add_row("Limitation", lim["text"])
    for g in p.get("guidance") or []:
        table.add_row("Guidance", g)
    for h in p.get("history") or []:
        table.add_row("History", f"{h['at']} {h['event']}: {h['detail']}")
    out.print(table)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        rows = data.get("profiles", data) if isinstance(data, dict) else data
        if not isinstance(rows, list):
            fail("The JSON file must hold a list of profiles (or {\"profiles\": [...]}).")
        return rows
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        row: dict[str, Any] = {k: v for k, v in raw.items() if k and v not in (None, "")}
        for flag in ("mfaEnabled",):
            if flag in row:
                row[flag] = str(row[flag]).strip().lower() in ("true", "1", "yes", "y")
        mode, url = row.pop("adminCenterMode", None), row.pop("adminCenterUrl", None)
        if mode or url:
            row["adminCenter"] = {"mode": mode or ("custom" if url else "default"), "url": url}
        rows.append(row)
    return rows


@profiles_app.command("create")
def profiles_create(ctx: typer.Context,
                    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                                help="CSV (name,description,mfaEnabled,username,password,"
                                                     "adminCenterMode,adminCenterUrl) or JSON (a list of create bodies)."),
                    as_json: bool = JsonFlag):
    """Create profiles from a CSV or JSON file; each refused row is reported with its field errors."""
    c = ctx_of(ctx)
    rows = _read_rows(file)
    results = []
    for number, row in enumerate(rows, start=1):
        try:
            p = c.client.create_profile(c.tenant, row)
            results.append({"row": number, "name": row.get("name"), "status": "created", "id": p["id"]})
        except ApiError as exc:
            if exc.status in (0, 401):
                abort(exc)
            results.append({"row": number, "name": row.get("name"), "status": "refused", "httpStatus": exc.status,
                            "detail": exc.detail, "errors": exc.errors})
    refused = [r for r in results if r["status"] == "refused"]
    if as_json:
        emit_json({"created": len(results) - len(refused), "refused": len(refused), "results": results})
    else:
        table = Table(title=f"{len(results) - len(refused)} created, {len(refused)} refused")
        for col in ("Row", "Name", "Result", "ID or reason"):
            table.add_column(col, overflow="fold")
        for r in results:
            reason = r.get("id") or "; ".join([r["detail"]] + [f"{e['field']}: {e['detail']}" for e in r["errors"]])
            table.add_row(str(r["row"]), r.get("name") or "", r["status"], reason)
        out.print(table)
    raise typer.Exit(USAGE if refused else OK)


def _explanation_lines(x: dict[str, Any], *, with_change: bool = True) -> list[str]:
    """The outcome's explanation (the policy named from the tenant's sign-in log) as plain lines."""
    state = x.get("state")
    if state == "pending":
        return [f"Explanation: pending - {x.get('reason') or 'looking in the tenant sign-in log.'}"]
    if state == "unavailable":
        lines = [f"Explanation: unavailable - {x.get('reason') or 'the policy could not be named.'}"]
        if x.get("missing"):
            lines.append(f"  Missing: {', '.join(x['missing'])}")
        return lines
    lines = ["Explanation (from the tenant's sign-in log):"]
    for p in x.get("policies") or []:
        managed = " (Microsoft-managed)" if p.get("microsoftManaged") else ""
        lines.append(f"  Policy: {p['displayName']}{managed}")
        lines.append(f"    id {p['id']}, state {p['state']}, failed controls: {', '.join(p.get('failedControls') or []) or '-'}")
    if x.get("securityDefaults"):
        lines.append("  Security defaults: on")
    change = x.get("suggestedChange")
    if with_change and change:
        lines.append(f"  Suggested change ({change['kind']}): {change['text']}")
    return lines


def _suggested_change(o: dict[str, Any]) -> Optional[dict[str, Any]]:
    x = o.get("explanation") or {}
    return x.get("suggestedChange") if x.get("state") == "explained" else None


def _print_outcome(o: dict[str, Any], title: str) -> None:
    status = o["status"]
    style = "green" if status == "passed" else "red"
    out.print(f"[{style}]{title}: {status}[/{style}]" + (f" {o['messageId']}" if o.get("messageId") else ""))
    app = "grantedPermissions" in o
    if status == "passed" and o.get("messageId"):  # passed with a warning (CERTIFICATE_EXPIRING)
        out.print(f"Warning: {o['message']}", markup=False)
        for n, s in enumerate(o.get("solutions") or [], start=1):
            out.print(f"  {n}. {s}", markup=False)
    if status != "passed":
        out.print(o["message"], markup=False)
        if o.get("cause"):
            out.print(o["cause"], markup=False)
        if o.get("explanation"):
            for line in _explanation_lines(o["explanation"], with_change=False):
                out.print(line, markup=False)
        if o.get("solutionsIntro"):
            out.print(o["solutionsIntro"], markup=False)
        # The suggested change (named from the sign-in log) is the first step; the spec's solutions follow.
        change = _suggested_change(o)
        steps = ([f"Suggested change for this account: {change['text']}"] if change else []) + list(o.get("solutions") or [])
        for n, s in enumerate(steps, start=1):
            out.print(f"  {n}. {s}", markup=False)
        ev = o.get("evidence") or {}
        facts = [f"{k}={ev[k]}" for k in ("aadstsCode", "httpStatus", "step", "correlationId", "retryAfterSeconds")
                 if ev.get(k) is not None]
        if facts:
            out.print("Evidence: " + ", ".join(facts), markup=False)
    if app:
        out.print(f"Granted permissions: {_permissions(o.get('grantedPermissions'))}", markup=False)
        out.print(f"Missing permissions: {_permissions(o.get('missingPermissions'))}", markup=False)
        if o.get("certificate"):
            out.print(f"Certificate: {o['certificate']['thumbprint'].upper()}, {_days_left(o['certificate'])}",
                      markup=False)
        if o.get("sharePointUrl"):
            out.print(f"SharePoint URL: {o['sharePointUrl']}", markup=False)
        return
    out.print(f"User role: {o.get('userRole') or '(blank)'}" + (f" - {o['userRoleNote']}" if o.get("userRoleNote") else ""),
              markup=False)


@profiles_app.command("validate")
def profiles_validate(ctx: typer.Context,
                      profile_ids: Optional[list[str]] = typer.Argument(None, help="One or more profile ids."),
                      all_: bool = typer.Option(False, "--all", help="Every profile of the tenant (a batch job)."),
                      status: Optional[str] = typer.Option(None, help="Profiles whose last validation is this (a batch job)."),
                      interval: float = typer.Option(1.0, help="Seconds between progress polls of a batch job, or "
                                                                "between looks at the history (--wait-explanation)."),
                      wait_explanation: bool = typer.Option(
                          False, "--wait-explanation",
                          help="One profile: when the explanation (the policy named from the tenant's sign-in log) is "
                               "pending, look at the profile's history until it is settled, at most --timeout seconds."),
                      timeout: float = typer.Option(120, help="Seconds --wait-explanation waits at most."),
                      as_json: bool = JsonFlag):
    """Run the Validation Test of one profile (its outcome), or of many (a batch job with a progress bar).
    Exit code 1 when a validation did not pass."""
    c = ctx_of(ctx)
    ids = list(profile_ids or [])
    if sum(bool(x) for x in (ids, all_, status)) != 1:
        fail("Give profile ids, --all or --status (exactly one of them).")
    if wait_explanation and len(ids) != 1:
        fail("--wait-explanation belongs to the test of one profile id.")
    if len(ids) == 1:
        result = api_call(c.client.validate_profile, c.tenant, ids[0])
        pending = (result.get("explanation") or {}).get("state") == "pending"
        if wait_explanation and pending:
            settled = _wait_explanation(c, ids[0], result["recordId"], interval=interval, timeout=timeout,
                                        quiet=as_json)
            if settled is not None:
                result = {**result, "explanation": settled}
        if as_json:
            emit_json(result)
        else:
            _print_outcome(result, ids[0])
            if (result.get("explanation") or {}).get("state") == "pending":
                hint = (f"Still pending after {timeout:g}s" if wait_explanation else "The explanation arrives later")
                err.print(f"{hint}: see it with 'profiles history {ids[0]}' or 'profiles validate {ids[0]} "
                          "--wait-explanation'.", markup=False, highlight=False)
        raise typer.Exit(OK if result["status"] == "passed" else FAILED)
    if status and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}.")
    selection = {"profileIds": ids} if ids else ({"all": True} if all_ else {"filter": {"lastStatus": status}})
    job = api_call(c.client.start_job, c.tenant, selection)
    _watch(c, job, interval=interval, as_json=as_json)


def _wait_explanation(c: Context, profile_id: str, record_id: str, *, interval: float, timeout: float,
                      quiet: bool) -> Optional[dict[str, Any]]:
    """The record's explanation once it is no longer pending (the follow-up found the sign-in log entry
    or gave up), looked for in the profile's history every ``interval`` seconds; None after ``timeout``."""
    deadline = time.monotonic() + timeout
    if not quiet:
        err.print("Looking in the tenant's sign-in log for the policy...", markup=False, highlight=False)
    while True:
        time.sleep(max(0.1, min(interval, deadline - time.monotonic())))
        history = api_call(c.client.list_validations, c.tenant, profile_id)
        record = next((r for r in history["items"] if r.get("recordId") == record_id), None)
        explanation = (record or {}).get("explanation")
        if explanation and explanation.get("state") != "pending":
            return explanation
        if time.monotonic() >= deadline:
            return None


@profiles_app.command("history")
def profiles_history(ctx: typer.Context, profile_id: str, as_json: bool = JsonFlag):
    """A profile's validation outcomes, newest first."""
    c = ctx_of(ctx)
    history = api_call(c.client.list_validations, c.tenant, profile_id)
    if as_json:
        emit_json(history)
        return
    table = Table(title=f"Validation history of {profile_id}")
    for col in ("When", "Reason", "Result", "Message", "Explanation"):
        table.add_column(col, overflow="fold")
    for r in history["items"]:
        table.add_row(r["at"], r["reason"], r["status"],
                      f"{r['messageId']}: {r['message']}" if r.get("messageId") else (r.get("userRoleNote") or ""),
                      Text("\n".join(_explanation_lines(r["explanation"]))) if r.get("explanation") else "")
    out.print(table)


def _certificate_source(pfx: Optional[Path], password_env: Optional[str]) -> dict[str, Any]:
    """``{"generate": true}``, or the PFX file as base64 with the password read from an environment
    variable (never from the command line, where it would stay in the shell history)."""
    if pfx is None:
        if password_env:
            fail("--pfx-password-env belongs to --pfx.")
        return {"generate": True}
    body: dict[str, Any] = {"pfx": base64.b64encode(pfx.read_bytes()).decode()}
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            fail(f"The environment variable {password_env} (--pfx-password-env) is not set.")
        body["password"] = password
    return body


PfxOption = typer.Option(None, "--pfx", exists=True, dir_okay=False,
                         help="Import this PKCS#12 file (with its private key) instead of letting Key Vault "
                              "generate the certificate.")
PfxPasswordEnv = typer.Option(None, "--pfx-password-env", metavar="VAR",
                              help="The environment variable that holds the PFX's password.")
WorkloadOption = typer.Option("backup", "--workload", help="backup or governance: the permissions the app needs.")
SharePointOption = typer.Option(None, "--sharepoint-url",
                                help="The tenant's SharePoint URL (default: found by the Validation Test).")


def _print_app_next_steps(c: Context, profile_id: str, certificate_url: str, consent_url: str,
                          required: dict[str, list[str]], steps: list[str]) -> None:
    out.print(f"Public certificate: {c.client.base_url + certificate_url}", markup=False)
    out.print(f"  (download it with: python -m cli profiles certificate {profile_id} --der -o app.cer)", markup=False)
    out.print(f"Admin consent: {consent_url}", markup=False)
    out.print(f"Required permissions: {_permissions(required)}", markup=False)
    if steps:
        out.print("Next steps:", markup=False)
        for n, step in enumerate(steps, start=1):
            out.print(f"  {n}. {step}", markup=False)


def _print_app_profile(c: Context, p: dict[str, Any], title: str) -> None:
    cert = p.get("certificate") or {}
    out.print(f"{title} {p['name']} (profile {p['id']}), client id {p.get('clientId')}", markup=False)
    if cert:
        out.print(f"Certificate: {cert['thumbprint'].upper()} valid until {cert['notAfter']}, {_days_left(cert)}",
                  markup=False)
    if p.get("previousCertificate"):
        out.print(f"Previous certificate: {p['previousCertificate']['thumbprint'].upper()} (still accepted until the "
                  "new one has signed in)", markup=False)


@profiles_app.command("create-app")
def profiles_create_app(ctx: typer.Context,
                        name: str = typer.Option(..., "--name", help="Profile Name (unique in the tenant)."),
                        client_id: str = typer.Option(..., "--client-id",
                                                      help="Application (client) ID of the app registration."),
                        description: Optional[str] = typer.Option(None, "--description"),
                        pfx: Optional[Path] = PfxOption, pfx_password_env: Optional[str] = PfxPasswordEnv,
                        workload: str = WorkloadOption, sharepoint_url: Optional[str] = SharePointOption,
                        as_json: bool = JsonFlag):
    """Create an app profile: an app registration that signs in with a certificate held in Key Vault
    (generated there by default, its key not exportable; or imported from --pfx)."""
    c = ctx_of(ctx)
    body: dict[str, Any] = {"kind": "app", "name": name, "clientId": client_id, "workload": workload,
                            "certificate": _certificate_source(pfx, pfx_password_env)}
    if description:
        body["description"] = description
    if sharepoint_url:
        body["sharePointUrl"] = sharepoint_url
    p = api_call(c.client.create_profile, c.tenant, body)
    if as_json:
        emit_json(p)
        return
    _print_app_profile(c, p, "Created app profile")
    _print_app_next_steps(c, p["id"], p["certificateUrl"], p["adminConsentUrl"], p["requiredPermissions"], p.get("guidance") or [])


@profiles_app.command("certificate")
def profiles_certificate(ctx: typer.Context, profile_id: str,
                         der: bool = typer.Option(False, "--der", help="DER (.cer) instead of PEM."),
                         output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                               help="Write it to this file (default: stdout)."),
                         as_json: bool = JsonFlag):
    """An app profile's public certificate, to upload to the app registration (never its key: that
    stays in Key Vault)."""
    c = ctx_of(ctx)
    response = api_call(c.client.get_certificate, c.tenant, profile_id, der=der)
    data = response.content
    if output:
        output.write_bytes(data)
        err.print(f"Wrote {output}", markup=False)
    if as_json:
        p = api_call(c.client.get_profile, c.tenant, profile_id)
        emit_json({"profileId": profile_id, "format": "der" if der else "pem", "file": str(output) if output else None,
                   "certificate": p.get("certificate"),
                   **({"der": base64.b64encode(data).decode()} if der else {"pem": data.decode("ascii")})})
    elif not output:
        if der:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            sys.stdout.write(data.decode("ascii"))


@profiles_app.command("rotate")
def profiles_rotate(ctx: typer.Context, profile_id: str,
                    pfx: Optional[Path] = PfxOption, pfx_password_env: Optional[str] = PfxPasswordEnv,
                    as_json: bool = JsonFlag):
    """Rotate an app profile's certificate: a new version (generated by Key Vault, or --pfx); the
    current one is still accepted until the new one has signed in."""
    c = ctx_of(ctx)
    p = api_call(c.client.rotate_certificate, c.tenant, profile_id, _certificate_source(pfx, pfx_password_env))
    if as_json:
        emit_json(p)
        return
    _print_app_profile(c, p, "Rotated the certificate of")
    out.print(f"Upload the new public certificate to the app registration: {c.client.base_url + p['certificateUrl']}",
              markup=False)
    out.print(f"  python -m cli profiles certificate {p['id']} --der -o app.cer", markup=False)


@profiles_app.command("migrate")
def profiles_migrate(ctx: typer.Context, profile_id: str,
                     client_id: str = typer.Option(..., "--client-id",
                                                   help="Application (client) ID of the app registration."),
                     pfx: Optional[Path] = PfxOption, pfx_password_env: Optional[str] = PfxPasswordEnv,
                     workload: str = WorkloadOption, sharepoint_url: Optional[str] = SharePointOption,
                     as_json: bool = JsonFlag):
    """Migrate an MFA or common profile to an app profile; prints the next steps, the public
    certificate and the admin-consent link. Its old password is deleted after the first passed test."""
    c = ctx_of(ctx)
    body: dict[str, Any] = {"clientId": client_id, "workload": workload}
    if pfx is not None:
        body["certificate"] = _certificate_source(pfx, pfx_password_env)
    elif pfx_password_env:
        fail("--pfx-password-env belongs to --pfx.")
    if sharepoint_url:
        body["sharePointUrl"] = sharepoint_url
    result = api_call(c.client.migrate_profile, c.tenant, profile_id, body)
    if as_json:
        emit_json(result)
        return
    _print_app_profile(c, result["profile"], "Migrated to an app profile:")
    _print_app_next_steps(c, profile_id, result["certificateUrl"], result["adminConsentUrl"], result["requiredPermissions"],
                          result["nextSteps"])


# ---------------------------------------------------------------------------------- jobs

def _job_exit(job: dict[str, Any]) -> int:
    return OK if job["state"] == "completed" and not job["failed"] and not job["errors"] else FAILED


def _summary(job: dict[str, Any]) -> Table:
    table = Table(title=f"Job {job['id']}: {job['state']}, {job['done']} of {job['total']}")
    table.add_column("Result")
    table.add_column("Profiles", justify="right")
    table.add_row("passed", str(job["passed"]))
    for mid, count in sorted(job["byMessageId"].items()):
        table.add_row(mid, str(count))
    if job["errors"] and not job["byMessageId"]:
        table.add_row("errors", str(job["errors"]))
    return table


def _watch(c: Context, job: dict[str, Any], *, interval: float, as_json: bool, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    if as_json:
        while job["state"] not in FINAL_STATES and time.monotonic() < deadline:
            time.sleep(interval)
            job = api_call(c.client.get_job, c.tenant, job["id"])
        emit_json(job)
        raise typer.Exit(_job_exit(job) if job["state"] in FINAL_STATES else USAGE)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(f"job {job['id'][:8]}", total=job["total"] or 1, completed=job["done"])
        while True:
            progress.update(task, total=job["total"] or 1, completed=job["done"] if job["total"] else 1,
                            description=f"job {job['id'][:8]} {job['passed']} passed, {job['failed']} failed, "
                                        f"{job['errors']} errors")
            if job["state"] in FINAL_STATES or time.monotonic() >= deadline:
                break
            time.sleep(interval)
            job = api_call(c.client.get_job, c.tenant, job["id"])
    out.print(_summary(job))
    if job["state"] not in FINAL_STATES:
        fail(f"The job did not finish within {timeout:.0f}s; watch it again with: jobs watch {job['id']}")
    raise typer.Exit(_job_exit(job))


@jobs_app.command("start")
def jobs_start(ctx: typer.Context,
               profile_ids: Optional[list[str]] = typer.Argument(None, help="Profile ids to validate."),
               all_: bool = typer.Option(False, "--all", help="Every profile of the tenant."),
               status: Optional[str] = typer.Option(None, help="Profiles whose last validation is this."),
               kind: Optional[str] = typer.Option(None, help="Only profiles of this kind (listed first)."),
               search: Optional[str] = typer.Option(None, help="Only profiles whose name or username has this."),
               watch: bool = typer.Option(True, "--watch/--no-watch", help="Show the progress until the job ends."),
               interval: float = typer.Option(1.0, help="Seconds between progress polls."),
               as_json: bool = JsonFlag):
    """Start a batch validation job over ids, --all, --status, or a --kind/--search filtered list."""
    c = ctx_of(ctx)
    ids = list(profile_ids or [])
    if kind or search:
        if ids or all_:
            fail("--kind/--search select from the list: give no ids and no --all with them.")
        ids = [p["id"] for p in _select(c, kind, status, search)]
        status = None
        if not ids:
            fail("No profile matches the filters.")
    if sum(bool(x) for x in (ids, all_, status)) != 1:
        fail("Give profile ids, --all, --status or --kind/--search (one selection).")
    if status and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}.")
    selection = {"profileIds": ids} if ids else ({"all": True} if all_ else {"filter": {"lastStatus": status}})
    job = api_call(c.client.start_job, c.tenant, selection)
    if not watch:
        if as_json:
            emit_json(job)
        else:
            out.print(f"Started job {job['id']} over {job['total']} profile(s). Watch it with: jobs watch {job['id']}",
                      markup=False)
        return
    _watch(c, job, interval=interval, as_json=as_json)


@jobs_app.command("watch")
def jobs_watch(ctx: typer.Context, job_id: str,
               interval: float = typer.Option(1.0, help="Seconds between progress polls."),
               timeout: float = typer.Option(3600, help="Give up after this many seconds (exit code 2)."),
               as_json: bool = JsonFlag):
    """Show a job's progress bar until it ends, then its summary by message id."""
    c = ctx_of(ctx)
    job = api_call(c.client.get_job, c.tenant, job_id)
    _watch(c, job, interval=interval, as_json=as_json, timeout=timeout)


# ---------------------------------------------------------------------------------- pool

def _pool_table(pool: dict[str, Any]) -> Table:
    table = Table(title=f"Account pool of tenant {pool['tenantId']}: {len(pool['members'])} member(s)")
    for col in ("Profile", "Username", "Health", "Lease", "Resting", "Last leased", "Throttled"):
        table.add_column(col, overflow="fold")
    for m in pool["members"]:
        table.add_row(m["profileId"], m.get("username") or ("(deleted)" if not m["exists"] else ""),
                      "healthy" if m["healthy"] else "unhealthy", f"until {m['leasedUntil']}" if m["leased"] else "free",
                      f"until {m['restUntil']}" if m["resting"] else "no", m.get("lastLeasedAt") or "never",
                      str(m["throttleReports"]))
    return table


@pool_app.command("show")
def pool_show(ctx: typer.Context, as_json: bool = JsonFlag):
    """The pool's members with their health, leases and resting state."""
    c = ctx_of(ctx)
    pool = api_call(c.client.get_pool, c.tenant)
    emit_json(pool) if as_json else out.print(_pool_table(pool))


@pool_app.command("set")
def pool_set(ctx: typer.Context, profile_ids: list[str] = typer.Argument(..., help="MFA profile ids (the whole pool)."),
             as_json: bool = JsonFlag):
    """Replace the pool's members."""
    c = ctx_of(ctx)
    pool = api_call(c.client.put_pool, c.tenant, profile_ids)
    emit_json(pool) if as_json else out.print(_pool_table(pool))


@pool_app.command("lease")
def pool_lease(ctx: typer.Context, seconds: Optional[int] = typer.Option(None, help="Lease time (1-3600 s)."),
               as_json: bool = JsonFlag):
    """Lease a free member (its app password is referenced in Key Vault, never shown)."""
    c = ctx_of(ctx)
    lease = api_call(c.client.lease, c.tenant, seconds)
    if as_json:
        emit_json(lease)
        return
    out.print(f"Leased {lease['username']} (profile {lease['profileId']}) until {lease['expiresAt']}", markup=False)
    out.print(f"Lease ID: {lease['leaseId']}", markup=False)


@pool_app.command("release")
def pool_release(ctx: typer.Context, lease_id: str,
                 retry_after: Optional[int] = typer.Option(None, "--retry-after",
                                                           help="SharePoint throttled the account: rest it this long (s)."),
                 as_json: bool = JsonFlag):
    """Give a lease back (optionally reporting throttling)."""
    c = ctx_of(ctx)
    release = api_call(c.client.release, c.tenant, lease_id, retry_after)
    if as_json:
        emit_json(release)
        return
    rest = f"; resting until {release['restUntil']}" if release.get("restUntil") else ""
    out.print(f"Released {release['leaseId']} (profile {release['profileId']}){rest}", markup=False)


# ---------------------------------------------------------------------------------- reserved IPs

@ips_app.command("download")
def reserved_ips_download(ctx: typer.Context,
                          output: Optional[Path] = typer.Option(None, "--output", "-o",
                                                                help="Write the CSV here (default: stdout)."),
                          as_json: bool = JsonFlag):
    """The reserved IP addresses as the service's CSV download (or --json)."""
    c = ctx_of(ctx)
    response = api_call(c.client.reserved_ip_addresses, csv=not as_json)
    text = json.dumps(response.json(), indent=2) + "\n" if as_json else response.text
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"Wrote {output}", markup=False)
    else:
        sys.stdout.write(text)
