"""The settings contract and the deployment agree with the code (fast, no network).

``shared/config.py`` ``SETTINGS`` is the contract: every app setting the application reads is
declared there. This module checks that

(a) the code reads no environment variable that ``SETTINGS`` does not declare (scanning ``shared/``
    and ``functions/``), every declared setting is in ``local.settings.sample.json``, every
    non-``local_only`` one is an app setting of the Function App in ``infra/app/api.bicep`` and no
    ``local_only`` one is, and neither file carries names outside the contract and a short list of
    host settings;
(b) the tables and queues that ``infra/`` creates are exactly ``shared/names.py``'s (plus the
    host's ``-poison`` queues);
(c) ``host.json`` is valid against the Functions host.json JSON schema from SchemaStore (vendored in
    ``tests/data/``) and its queue settings are in the ranges the host accepts;
(d) every requirement line is pinned with ``==``;
(e) the checker itself fails when a setting is added to code only, or to ``SETTINGS`` only.

The Bicep CLI cannot be installed on this project's machines (see ``infra/README.md``), so the Bicep
files are read with the tree-sitter Bicep grammar: a syntax check plus structural checks of what
the deployment must look like (Flex Consumption, identity-based storage, roles, no secrets).
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Collection, Iterable

import jsonschema
import pytest
import tree_sitter_bicep
import yaml
from tree_sitter import Language, Node, Parser

from shared import names
from shared.config import SETTINGS, Setting

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
API_BICEP = INFRA / "app" / "api.bicep"
MAIN_BICEP = INFRA / "main.bicep"
SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"
HOST_JSON = ROOT / "host.json"
HOST_SCHEMA = ROOT / "tests" / "data" / "host.schema.json"
BUILTIN_ROLES = ROOT / "tests" / "data" / "azure-builtin-roles.json"
FLEX_REGIONS = ROOT / "tests" / "data" / "flex-consumption-regions.json"
RBAC_BICEP = INFRA / "app" / "rbac.bicep"
AZD_HOOKS = INFRA / "hooks" / "azd_hooks.py"
CODE_DIRS = ("shared", "functions")
CONFIG_MODULE = Path("shared") / "config.py"

#: Settings that the Functions host reads, not the application: allowed in the Bicep app settings and
#: in local.settings.sample.json without a SETTINGS entry. ``AzureWebJobsStorage__*`` covers the
#: identity-based host storage connection (accountName/credential/clientId are also in SETTINGS,
#: because the app's own storage clients read them; the *ServiceUri ones only the host reads).
HOST_SETTINGS = frozenset({
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "PYTHON_THREADPOOL_THREAD_COUNT",  # the Python worker's thread pool (sync functions run there)
    "FUNCTIONS_WORKER_PROCESS_COUNT",  # language worker processes (local host; not on Flex Consumption)
})
HOST_SETTING_PREFIXES = ("AzureWebJobsStorage__",)
#: Read by devtools.local_host only (the local function/admin key, DESIGN §6); never deployed.
LOCAL_HOST_SETTINGS = frozenset({"LOCAL_FUNCTION_KEY"})
#: Settings Flex Consumption rejects as app settings (the runtime is functionAppConfig.runtime).
FLEX_REJECTED_SETTINGS = frozenset({
    "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_RUN_FROM_PACKAGE", "AzureWebJobsStorage",
})

DYNAMIC = "<dynamic>"
_BINDING_EXPRESSION = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")


def is_host_setting(name: str) -> bool:
    return name in HOST_SETTINGS or name.startswith(HOST_SETTING_PREFIXES)


# ---------------------------------------------------------------------------------------------
# (a) Settings the code reads
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SettingRead:
    """One place where code reads (or names) an app setting."""

    name: str  #: the setting, or :data:`DYNAMIC` when the key is not a string literal
    where: str  #: ``path:line``
    how: str  #: ``environ``, ``getenv``, ``config``, ``literal`` or ``binding``

    @property
    def is_env_read(self) -> bool:
        return self.how in ("environ", "getenv", "config")


def _is_environ(node: ast.AST) -> bool:
    """``os.environ``, ``environ`` (``from os import environ``) or a Mapping parameter named ``env``."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id in ("environ", "env")


def _is_getenv(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "getenv") or (
        isinstance(node, ast.Name) and node.id == "getenv")


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _ReadFinder(ast.NodeVisitor):
    def __init__(self, rel: str, declared: Collection[str], *, is_config: bool):
        self.rel, self.declared, self.is_config = rel, frozenset(declared), is_config
        self.reads: list[SettingRead] = []
        self._in_declaration = 0

    def _add(self, name: str | None, node: ast.AST, how: str) -> None:
        self.reads.append(SettingRead(name if name is not None else DYNAMIC,
                                      f"{self.rel}:{getattr(node, 'lineno', 0)}", how))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "Setting" and self.is_config:
            # The declarations themselves (SETTINGS) are the contract, not reads.
            self._in_declaration += 1
            self.generic_visit(node)
            self._in_declaration -= 1
            return
        if _is_getenv(func) and node.args:
            self._add(_literal(node.args[0]), node, "getenv")
        elif (isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault")
              and _is_environ(func.value) and node.args):
            self._add(_literal(node.args[0]), node, "environ")
        elif (self.is_config and len(node.args) >= 2 and isinstance(node.args[0], ast.Name)
              and node.args[0].id == "env"):
            # shared/config.py helpers: _get(env, "NAME"), _int(env, "NAME")
            name = _literal(node.args[1])
            if name is not None:
                self._add(name, node, "config")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if _is_environ(node.value):
            self._add(_literal(node.slice), node, "environ")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        # "NAME" in os.environ
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)) and _is_environ(right):
                self._add(_literal(node.left), node, "environ")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and not self._in_declaration and node.value in self.declared:
            self._add(node.value, node, "literal")

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # Bindings of the v2 model are decorator arguments; the host resolves their
        # ``%NAME%`` expressions and their ``connection`` from app settings.
        for decorator in node.decorator_list:
            if not isinstance(decorator, ast.Call):
                continue
            for keyword in decorator.keywords:
                value = _literal(keyword.value)
                if value is None:
                    continue
                if keyword.arg == "connection":
                    self._add(value, keyword.value, "binding")
                for name in _BINDING_EXPRESSION.findall(value):
                    self._add(name, keyword.value, "binding")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function


def find_setting_reads(root: Path, declared: Collection[str], *,
                       code_dirs: Iterable[str] = CODE_DIRS) -> list[SettingRead]:
    """Every read of an app setting in the Python sources under ``root/<code_dirs>``.

    Found: ``os.environ[...]`` / ``.get`` / ``in``, ``os.getenv``, the ``env`` mapping helpers of
    ``shared/config.py``, ``%NAME%`` binding expressions and ``connection="NAME"`` arguments
    (resolved by the host from app settings), and string literals equal to a declared setting name.
    """
    reads: list[SettingRead] = []
    for code_dir in code_dirs:
        for path in sorted((root / code_dir).rglob("*.py")):
            rel = path.relative_to(root)
            finder = _ReadFinder(rel.as_posix(), declared, is_config=rel == CONFIG_MODULE)
            finder.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
            reads.extend(finder.reads)
    return reads


def check_settings(reads: Iterable[SettingRead], settings: Iterable[Setting],
                   sample_values: Collection[str], bicep_settings: Collection[str]) -> list[str]:
    """Problems between the code's reads, the SETTINGS contract, the local sample and Bicep."""
    settings = tuple(settings)
    declared = {s.name: s for s in settings}
    problems: list[str] = []
    for read in reads:
        if read.name == DYNAMIC:
            if read.is_env_read and not read.where.startswith(CONFIG_MODULE.as_posix() + ":"):
                problems.append(f"{read.where}: reads an environment variable whose name is not a "
                                "literal; read settings only through shared/config.py")
        elif read.name not in declared and (read.is_env_read or read.how == "binding"):
            problems.append(f"{read.where}: code reads {read.name!r}, which shared/config.py "
                            "SETTINGS does not declare")
    for setting in settings:
        if setting.name not in sample_values:
            problems.append(f"{setting.name}: declared in SETTINGS but missing from "
                            "local.settings.sample.json Values")
        if setting.local_only and setting.name in bicep_settings:
            problems.append(f"{setting.name}: local_only, but infra/app/api.bicep deploys it")
        if not setting.local_only and setting.name not in bicep_settings:
            problems.append(f"{setting.name}: declared in SETTINGS (not local_only) but missing "
                            "from the app settings in infra/app/api.bicep")
    for name in bicep_settings:
        if name not in declared and not is_host_setting(name):
            problems.append(f"{name}: app setting in infra/app/api.bicep that neither SETTINGS "
                            "nor the host settings declare")
    for name in sample_values:
        if name not in declared and not is_host_setting(name) and name not in LOCAL_HOST_SETTINGS:
            problems.append(f"{name}: in local.settings.sample.json but not declared in SETTINGS")
    return problems


def sample_values() -> dict[str, str]:
    return json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8"))["Values"]


# ---------------------------------------------------------------------------------------------
# Reading Bicep (tree-sitter grammar; the Bicep CLI is not installable here)
# ---------------------------------------------------------------------------------------------

_PARSER = Parser(Language(tree_sitter_bicep.language()))


class Expr(str):
    """The source text of a Bicep expression that is not a plain literal."""


@dataclass
class BicepFile:
    path: Path
    source: bytes
    root: Node

    @classmethod
    def load(cls, path: Path) -> "BicepFile":
        source = path.read_bytes()
        return cls(path, source, _PARSER.parse(source).root_node)

    def text(self, node: Node) -> str:
        return self.source[node.start_byte:node.end_byte].decode("utf-8")

    def syntax_errors(self) -> list[str]:
        found: list[str] = []

        def walk(node: Node) -> None:
            if node.type == "ERROR" or node.is_missing:
                row, col = node.start_point
                found.append(f"{self.path.relative_to(ROOT)}:{row + 1}:{col + 1}: "
                             f"{'missing' if node.is_missing else 'unexpected'} "
                             f"{self.text(node)[:60]!r}")
            for child in node.children:
                walk(child)

        walk(self.root)
        return found

    def value(self, node: Node) -> Any:
        """A Bicep literal as Python (objects, arrays, plain strings, numbers, booleans, null);
        anything else as :class:`Expr`."""
        kind = node.type
        if kind == "object":
            out: dict[str, Any] = {}
            for prop in node.named_children:
                if prop.type != "object_property":
                    continue  # comments, nested resource declarations
                parts = [c for c in prop.named_children if c.type != "comment"]
                key = self.value(parts[0]) if parts[0].type == "string" else self.text(parts[0])
                out[str(key)] = self.value(parts[-1])
            return out
        if kind == "array":
            return [self.value(c) for c in node.named_children if c.type != "comment"]
        if kind == "string":
            if any(c.type == "interpolation" for c in node.named_children):
                return Expr(self.text(node))
            raw = self.text(node)
            return raw[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        if kind == "number":
            return int(self.text(node))
        if kind == "boolean":
            return self.text(node) == "true"
        if kind == "null":
            return None
        return Expr(self.text(node))

    def _declarations(self, kind: str) -> Iterable[Node]:
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.type == kind:
                yield node
            stack.extend(reversed(node.named_children))

    @staticmethod
    def _body(node: Node) -> Node | None:
        """The object of a resource/module declaration (through ``if (...)`` and ``for ...``)."""
        for child in reversed(node.named_children):
            if child.type == "object":
                return child
            if child.type in ("if_statement", "for_statement"):
                return BicepFile._body(child)
        return None

    def variables(self) -> dict[str, Node]:
        return {self.text(n.named_children[0]): n.named_children[-1]
                for n in self._declarations("variable_declaration")}

    def parameters(self) -> dict[str, bool]:
        """Parameter name -> whether it has a default value."""
        out = {}
        for n in self._declarations("parameter_declaration"):
            parts = [c for c in n.named_children if c.type != "comment"]
            out[self.text(parts[0])] = len(parts) > 2
        return out

    def outputs(self) -> list[str]:
        return [self.text(n.named_children[0]) for n in self._declarations("output_declaration")]

    def decorators(self, parameter: str) -> dict[str, list[Any]]:
        """Decorators of one parameter: name -> argument values (``@allowed([...])`` -> [[...]])."""
        for n in self._declarations("parameter_declaration"):
            if self.text(n.named_children[0]) != parameter:
                continue
            out: dict[str, list[Any]] = {}
            block = n.prev_named_sibling
            while block is not None and block.type == "comment":
                block = block.prev_named_sibling
            if block is not None and block.type == "decorators":
                for decorator in block.named_children:
                    if decorator.type != "decorator":
                        continue  # comments between decorators
                    call = decorator.named_children[0]
                    if call.type != "call_expression":
                        continue
                    name, arguments = call.named_children[0], call.named_children[-1]
                    out[self.text(name)] = [self.value(a) for a in arguments.named_children
                                            if a.type != "comment"]
            return out
        raise KeyError(f"{self.path}: no parameter {parameter}")

    def _headed(self, kind: str) -> list[tuple[str, str, Any]]:
        """``(symbolic name, quoted header, body)`` of every declaration of ``kind``."""
        out = []
        for n in self._declarations(kind):
            body = self._body(n)
            out.append((self.text(n.named_children[0]), self.value(n.named_children[1]),
                        self.value(body) if body is not None else {}))
        return out

    def resources(self) -> list[tuple[str, str, Any]]:
        """``(symbolic name, type@version, body)`` of every resource, nested ones included."""
        return self._headed("resource_declaration")

    def modules(self) -> list[tuple[str, str, Any]]:
        """``(symbolic name, path, body)`` of every module."""
        return self._headed("module_declaration")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def bicep_app_settings(path: Path = API_BICEP) -> dict[str, Any]:
    """The ``appSettings`` object of ``infra/app/api.bicep`` (what ``sites/config appsettings`` gets)."""
    bicep = BicepFile.load(path)
    variables = bicep.variables()
    assert "appSettings" in variables, f"{path}: no `var appSettings = {{...}}`"
    settings = bicep.value(variables["appSettings"])
    assert isinstance(settings, dict)
    return settings


def bicep_string_array(path: Path, variable: str) -> list[str]:
    bicep = BicepFile.load(path)
    value = bicep.value(bicep.variables()[variable])
    assert isinstance(value, list) and all(type(v) is str for v in value), (
        f"{path}: {variable} must be an array of plain strings")
    return value


def resources_of(path: Path, type_prefix: str) -> list[tuple[str, str, Any]]:
    return [r for r in BicepFile.load(path).resources() if r[1].split("@")[0] == type_prefix]


# ---------------------------------------------------------------------------------------------
# (a) tests
# ---------------------------------------------------------------------------------------------

def test_settings_match_code_sample_and_bicep():
    declared = [s.name for s in SETTINGS]
    reads = find_setting_reads(ROOT, declared)
    problems = check_settings(reads, SETTINGS, sample_values(), bicep_app_settings())
    assert problems == [], "\n".join(problems)


def test_the_scanner_sees_how_the_code_reads_settings():
    """Guard against a checker that silently finds nothing: config.py's reads are found."""
    reads = find_setting_reads(ROOT, [s.name for s in SETTINGS])
    config_reads = {r.name for r in reads if r.how == "config"}
    assert {"KEY_VAULT_URI", "M365_CLOUD", "RESERVED_IP_RANGES"} <= config_reads


def test_settings_names_are_unique():
    seen = [s.name for s in SETTINGS]
    assert len(seen) == len(set(seen))


def test_deployed_settings_carry_no_secrets_or_keys():
    for name, value in bicep_app_settings().items():
        assert name not in FLEX_REJECTED_SETTINGS, f"{name} is rejected on Flex Consumption"
        text = str(value)
        for marker in ("listKeys(", "listkeys(", "AccountKey=", "SharedAccessSignature",
                       "SharedAccessKey", "ClientSecret", "secret"):
            assert marker.lower() not in text.lower(), f"app setting {name} looks like a secret: {text}"
    settings = bicep_app_settings()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith("Authorization=AAD'")
    for path in bicep_files():
        text = path.read_text(encoding="utf-8")
        assert "listKeys(" not in text and "@secure()" not in text, f"{path}: keys or secrets"


# ---------------------------------------------------------------------------------------------
# (e) the checker fails when the contract is broken
# ---------------------------------------------------------------------------------------------

def _synthetic_code(tmp_path: Path, body: str) -> Path:
    (tmp_path / "shared").mkdir()
    (tmp_path / "functions").mkdir()
    (tmp_path / "shared" / "feature.py").write_text(body, encoding="utf-8")
    return tmp_path


def test_a_setting_added_to_code_only_is_reported(tmp_path):
    root = _synthetic_code(tmp_path, (
        "import os\n"
        "from os import environ, getenv\n"
        "timeout = os.environ['NEW_SETTING']\n"
        "other = os.getenv('OTHER_NEW_SETTING', '1')\n"
        "third = environ.get('THIRD_NEW_SETTING')\n"
        "flag = 'FOURTH_NEW_SETTING' in os.environ\n"
        "key_vault = os.environ['KEY_VAULT_URI']\n"
        "@bp.timer_trigger(arg_name='t', schedule='%NEW_SCHEDULE%')\n"
        "@bp.queue_trigger(arg_name='m', queue_name='q', connection='OtherStorage')\n"
        "def worker(m):\n"
        "    logging.info('%s done at %Y%', m)\n"
        "def f(name):\n"
        "    return os.environ.get(name)\n"
    ))
    declared = [s.name for s in SETTINGS]
    reads = find_setting_reads(root, declared)
    problems = check_settings(reads, SETTINGS, sample_values(), bicep_app_settings())
    text = "\n".join(problems)
    for name in ("NEW_SETTING", "OTHER_NEW_SETTING", "THIRD_NEW_SETTING", "FOURTH_NEW_SETTING",
                 "NEW_SCHEDULE", "OtherStorage"):
        assert f"code reads {name!r}" in text, text
    assert "shared/feature.py:3" in text
    assert "whose name is not a literal" in text  # os.environ.get(name)
    assert "KEY_VAULT_URI" not in text  # declared, in the sample and in Bicep: fine
    assert "'s'" not in text and "'Y'" not in text  # %-formatting outside bindings is no setting


def test_a_setting_added_to_settings_only_is_reported():
    settings = SETTINGS + (Setting("NEW_SETTING", "added to the contract only", "1"),
                           Setting("NEW_LOCAL_SETTING", "local only", local_only=True))
    problems = check_settings([], settings, sample_values(), bicep_app_settings())
    assert ("NEW_SETTING: declared in SETTINGS but missing from local.settings.sample.json Values"
            in problems)
    assert ("NEW_SETTING: declared in SETTINGS (not local_only) but missing from the app settings "
            "in infra/app/api.bicep" in problems)
    assert any(p.startswith("NEW_LOCAL_SETTING: declared in SETTINGS but missing") for p in problems)
    assert not any(p.startswith("NEW_LOCAL_SETTING") and "api.bicep" in p for p in problems)


def test_bicep_or_sample_settings_outside_the_contract_are_reported():
    bicep = dict(bicep_app_settings(), STRAY_SETTING="x", AZURE_CLIENT_SECRET="x")
    sample = dict(sample_values(), STRAY_LOCAL="x")
    problems = check_settings([], SETTINGS, sample, bicep)
    assert any(p.startswith("STRAY_SETTING: app setting in infra/app/api.bicep") for p in problems)
    assert "AZURE_CLIENT_SECRET: local_only, but infra/app/api.bicep deploys it" in problems
    assert any(p.startswith("STRAY_LOCAL: in local.settings.sample.json") for p in problems)


# ---------------------------------------------------------------------------------------------
# (b) tables and queues
# ---------------------------------------------------------------------------------------------

def test_bicep_tables_and_queues_match_shared_names():
    tables = bicep_string_array(MAIN_BICEP, "storageTables")
    queues = bicep_string_array(MAIN_BICEP, "storageQueues")
    assert sorted(tables) == sorted(names.TABLES) and len(set(tables)) == len(tables)
    expected_queues = set(names.QUEUES) | {f"{q}-poison" for q in names.QUEUES}
    assert sorted(queues) == sorted(expected_queues) and len(set(queues)) == len(queues)
    for table in tables:  # Azure Table naming rules
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", table), table
    for queue in queues:  # Azure Queue naming rules
        assert re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]", queue), queue


def test_the_name_lists_reach_the_storage_module():
    modules = {name: (path, body) for name, path, body in BicepFile.load(MAIN_BICEP).modules()}
    path, body = modules["storage"]
    assert (INFRA / path).is_file()
    assert body["params"]["tableNames"] == "storageTables"
    assert body["params"]["queueNames"] == "storageQueues"
    storage = BicepFile.load(INFRA / path)
    loops = {t: b for _, t, b in storage.resources()}
    assert loops["tables"] == {"name": "tableName"} and loops["queues"] == {"name": "queueName"}
    text = storage.path.read_text(encoding="utf-8")
    assert "for tableName in tableNames" in text and "for queueName in queueNames" in text


# ---------------------------------------------------------------------------------------------
# (c) host.json
# ---------------------------------------------------------------------------------------------

def _host_schema() -> dict:
    """The vendored SchemaStore schema, with its top-level ``oneOf`` read as ``anyOf``.

    Upstream, ``version-2`` and ``version-2-ext-5`` overlap: any host.json that uses no
    extension-5-only Service Bus setting is valid under both, so ``oneOf`` rejects every ordinary
    v2 file ("valid under each of", MicrosoftDocs/azure-docs#121718). The definitions themselves
    are used unchanged; the test below also requires ``version-2`` itself.
    """
    schema = json.loads(HOST_SCHEMA.read_text(encoding="utf-8"))
    schema["anyOf"] = schema.pop("oneOf")
    return schema


def _timespan(value: str) -> timedelta:
    """A .NET TimeSpan in the ``[d.]hh:mm:ss[.fffffff]`` form host.json uses."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?", value)
    assert match, f"not a TimeSpan: {value!r}"
    days, hours, minutes, seconds, fraction = match.groups()
    return timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes),
                     seconds=int(seconds), microseconds=int((fraction or "0").ljust(7, "0")) // 10)


def test_host_json_is_valid_against_the_functions_schema():
    host = json.loads(HOST_JSON.read_text(encoding="utf-8"))
    schema = _host_schema()
    jsonschema.Draft4Validator.check_schema(schema)
    errors = [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(host)]
    assert errors == [], errors
    version_2 = dict(schema, **{"$ref": "#/definitions/version-2"})
    version_2.pop("anyOf")
    errors = [e.message for e in jsonschema.Draft4Validator(version_2).iter_errors(host)]
    assert errors == [], errors


def test_host_json_queue_settings_are_in_the_ranges_the_host_accepts():
    """Limits of the Storage Queues extension (QueuesOptions) that the schema does not state."""
    host = json.loads(HOST_JSON.read_text(encoding="utf-8"))
    queues = host["extensions"]["queues"]
    assert 1 <= queues.get("batchSize", 16) <= 32
    assert queues.get("newBatchThreshold", 0) >= 0
    assert queues.get("maxDequeueCount", 5) >= 1
    assert _timespan(queues.get("maxPollingInterval", "00:01:00")) >= timedelta(milliseconds=100)
    assert timedelta(0) <= _timespan(queues.get("visibilityTimeout", "00:00:00")) <= timedelta(days=7)
    assert queues.get("messageEncoding", "base64") in ("base64", "none")
    timeout = _timespan(host.get("functionTimeout", "00:30:00"))
    assert timedelta(seconds=1) <= timeout, "functionTimeout must be positive"


def test_the_vendored_schema_names_its_source():
    note = (HOST_SCHEMA.parent / "README.md").read_text(encoding="utf-8")
    assert "SchemaStore/schemastore" in note and "src/schemas/json/host.json" in note
    schema = json.loads(HOST_SCHEMA.read_text(encoding="utf-8"))
    assert schema["id"] == "https://json.schemastore.org/host.json"


# ---------------------------------------------------------------------------------------------
# (d) pinned requirements
# ---------------------------------------------------------------------------------------------

_PINNED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?==[A-Za-z0-9.+!_-]+(\s*;.+)?")


def unpinned_requirements(path: Path) -> list[str]:
    problems = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            included = path.parent / line.split(maxsplit=1)[1]
            if not included.is_file():
                problems.append(f"{path.name}:{number}: includes missing {included.name}")
            continue
        if not _PINNED.fullmatch(line):
            problems.append(f"{path.name}:{number}: not pinned with ==: {line}")
    return problems


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt"])
def test_requirements_are_pinned(name):
    assert unpinned_requirements(ROOT / name) == []


def test_the_pin_check_rejects_ranges(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("ok==1.0\nloose>=1.0\nbare\n", encoding="utf-8")
    assert len(unpinned_requirements(req)) == 2


# ---------------------------------------------------------------------------------------------
# Structure of the deployment (what `bicep build` would not tell anyway)
# ---------------------------------------------------------------------------------------------

def test_bicep_files_parse():
    errors = [e for path in bicep_files() for e in BicepFile.load(path).syntax_errors()]
    assert bicep_files() and errors == [], "\n".join(errors)


def test_modules_exist_and_parameters_file_matches():
    main = BicepFile.load(MAIN_BICEP)
    for _, path, _ in main.modules():
        assert (INFRA / path).is_file(), path
    params = main.parameters()
    given = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert set(given) <= set(params), set(given) - set(params)
    required = {name for name, has_default in params.items() if not has_default}
    assert required <= set(given), required - set(given)
    assert given["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert given["location"]["value"] == "${AZURE_LOCATION}"


def test_azd_outputs_and_service():
    outputs = BicepFile.load(MAIN_BICEP).outputs()
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", o) for o in outputs), outputs
    assert {"AZURE_LOCATION", "AZURE_TENANT_ID", "AZURE_FUNCTION_APP_NAME", "SERVICE_API_NAME",
            "KEY_VAULT_URI", "AZURE_STORAGE_ACCOUNT_NAME"} <= set(outputs)
    assert "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID" in outputs  # read by the postprovision hook
    azure_yaml = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert azure_yaml["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}
    assert azure_yaml["infra"]["path"] == "infra"


def _load_hooks():
    import importlib.util
    spec = importlib.util.spec_from_file_location("azd_hooks", AZD_HOOKS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_azure_yaml_runs_the_hooks_on_every_platform():
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))["hooks"]
    assert set(hooks) == {"preprovision", "postprovision"}
    for name, hook in hooks.items():
        assert hook["posix"] == {"shell": "sh", "run": f"python3 infra/hooks/azd_hooks.py {name}"}
        assert hook["windows"] == {"shell": "pwsh", "run": f"python infra/hooks/azd_hooks.py {name}"}
    assert set(_load_hooks().HOOKS) == set(hooks)
    # The hook reads the outputs by these names and knows the deployment's role by its id.
    outputs = BicepFile.load(MAIN_BICEP).outputs()
    assert {"AZURE_RESOURCE_GROUP", "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID"} <= set(outputs)
    assert _load_hooks().BLOB_DATA_OWNER == builtin_roles()["Storage Blob Data Owner"]
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert params["enableStaticEgress"]["value"] == "${ENABLE_STATIC_EGRESS=true}"


class FakeArm:
    def __init__(self, answers: dict[tuple[str, str], list[Any]]):
        self.answers, self.calls = answers, []

    def __call__(self, method: str, path: str) -> Any:
        self.calls.append((method, path.split("?")[0]))
        answer = self.answers[(method, path.split("?")[0])]
        value = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(value, Exception):
            raise value
        return value


def test_preprovision_registers_microsoft_app_only_when_needed():
    hooks = _load_hooks()
    provider = "/subscriptions/sub/providers/Microsoft.App"
    registered = FakeArm({("GET", provider): [{"registrationState": "Registered"}]})
    assert hooks.preprovision({"AZURE_SUBSCRIPTION_ID": "sub"}, lambda: registered) == 0
    assert registered.calls == [("GET", provider)]
    new = FakeArm({("GET", provider): [{"registrationState": "NotRegistered"},
                                       {"registrationState": "Registering"},
                                       {"registrationState": "Registered"}],
                   ("POST", f"{provider}/register"): [{}]})
    sleeps = []
    hooks.ensure_provider(new, "sub", "Microsoft.App", sleep=sleeps.append)
    assert ("POST", f"{provider}/register") in new.calls and sleeps == [hooks.POLL_SECONDS]
    never = lambda: pytest.fail("no ARM call without static egress")  # noqa: E731
    assert hooks.preprovision({"ENABLE_STATIC_EGRESS": "false", "AZURE_SUBSCRIPTION_ID": "sub"}, never) == 0
    denied = FakeArm({("GET", provider): [{"registrationState": "NotRegistered"}],
                      ("POST", f"{provider}/register"): [hooks.ArmError(403, "AuthorizationFailed")]})
    with pytest.raises(SystemExit, match="ENABLE_STATIC_EGRESS false"):
        hooks.ensure_provider(denied, "sub", "Microsoft.App", sleep=lambda s: None)


def test_postprovision_waits_only_for_fresh_role_assignments():
    from datetime import datetime, timezone
    hooks = _load_hooks()
    env = {"AZURE_SUBSCRIPTION_ID": "sub", "AZURE_RESOURCE_GROUP": "rg-dev",
           "AZURE_STORAGE_ACCOUNT_NAME": "stx", "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID": "pid"}
    path = ("/subscriptions/sub/resourceGroups/rg-dev/providers/Microsoft.Storage/storageAccounts/stx"
            "/providers/Microsoft.Authorization/roleAssignments")
    owner = f"/subscriptions/sub/providers/Microsoft.Authorization/roleDefinitions/{hooks.BLOB_DATA_OWNER}"

    def listing(created: str) -> FakeArm:
        return FakeArm({("GET", path): [{"value": [
            {"properties": {"roleDefinitionId": owner, "createdOn": created}},
            {"properties": {"roleDefinitionId": "/x/0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
                            "createdOn": "2026-12-01T10:04:59.9999999Z"}}]}]})

    now = lambda: datetime(2026, 12, 1, 10, 2, 0, tzinfo=timezone.utc)  # noqa: E731
    sleeps: list[float] = []
    fresh = listing("2026-12-01T10:00:00.1234567Z")
    assert hooks.postprovision(env, lambda: fresh, now=now, sleep=sleeps.append) == 0
    assert [round(s) for s in sleeps] == [180]  # 300 s after 10:00:00.12, it is 10:02
    sleeps.clear()
    old = listing("2026-11-30T09:00:00Z")
    assert hooks.postprovision(env, lambda: old, now=now, sleep=sleeps.append) == 0 and sleeps == []
    sleeps.clear()
    assert hooks.postprovision(dict(env, ROLE_PROPAGATION_SECONDS="60"), lambda: listing(
        "2026-12-01T10:01:30Z"), now=now, sleep=sleeps.append) == 0 and sleeps == [30]
    never = lambda: pytest.fail("no ARM call without the outputs")  # noqa: E731
    assert hooks.postprovision({}, never, now=now, sleep=sleeps.append) == 0


def test_function_app_is_flex_consumption_python_with_identity_based_storage():
    plan = resources_of(API_BICEP, "Microsoft.Web/serverfarms")
    assert [p[2]["sku"] for p in plan] == [{"name": "FC1", "tier": "FlexConsumption"}]
    (site,) = resources_of(API_BICEP, "Microsoft.Web/sites")
    body = site[2]
    assert body["kind"] == "functionapp,linux"
    assert body["identity"]["type"] == "UserAssigned"
    config = body["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert BicepFile.load(API_BICEP).parameters()["pythonVersion"]
    assert "param pythonVersion string = '3.11'" in API_BICEP.read_text(encoding="utf-8")
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert set(config["scaleAndConcurrency"]) == {"instanceMemoryMB", "maximumInstanceCount"}
    assert "appSettings" not in body["properties"].get("siteConfig", {}), (
        "app settings belong in `var appSettings` (checked above), not siteConfig")
    (appsettings,) = resources_of(API_BICEP, "Microsoft.Web/sites/config")
    assert appsettings[2]["name"] == "appsettings" and appsettings[2]["properties"] == "appSettings"
    python = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text())
    assert python and python.group(1) == "3.11"


#: siteConfig properties this template may set on a Flex Consumption site. Flex Consumption does
#: not support most of siteConfig ("Flex Consumption plan deprecations" in the Functions app
#: settings reference): the runtime, scale and deployment live in functionAppConfig. Add a property
#: here only after checking it there.
FLEX_SITE_CONFIG = frozenset({"minTlsVersion"})
#: siteConfig properties that Flex Consumption rejects or ignores, named so that the failure says so.
FLEX_REJECTED_SITE_CONFIG = frozenset({
    "ftpsState", "alwaysOn", "linuxFxVersion", "windowsFxVersion", "pythonVersion", "javaVersion",
    "netFrameworkVersion", "powerShellVersion", "use32BitWorkerProcess", "functionAppScaleLimit",
    "preWarmedInstanceCount", "minimumElasticInstanceCount", "appSettings",
})


def flex_site_config_problems(site_config: dict[str, Any]) -> list[str]:
    problems = [f"siteConfig.{k}: Flex Consumption rejects it" for k in sorted(site_config)
                if k in FLEX_REJECTED_SITE_CONFIG]
    problems += [f"siteConfig.{k}: not in FLEX_SITE_CONFIG (check it against the Flex Consumption "
                 "deprecations first)" for k in sorted(site_config)
                 if k not in FLEX_REJECTED_SITE_CONFIG and k not in FLEX_SITE_CONFIG]
    return problems


def test_site_config_has_only_what_flex_consumption_accepts():
    (site,) = resources_of(API_BICEP, "Microsoft.Web/sites")
    site_config = site[2]["properties"]["siteConfig"]
    assert site_config == {"minTlsVersion": "1.2"}
    assert flex_site_config_problems(site_config) == []


def test_the_site_config_check_fails_on_ftps_state():
    problems = flex_site_config_problems({"minTlsVersion": "1.2", "ftpsState": "Disabled", "cors": {}})
    assert problems == ["siteConfig.ftpsState: Flex Consumption rejects it",
                        "siteConfig.cors: not in FLEX_SITE_CONFIG (check it against the Flex "
                        "Consumption deprecations first)"]


def flex_regions() -> list[str]:
    return json.loads(FLEX_REGIONS.read_text(encoding="utf-8"))["regions"]


def test_location_is_restricted_to_flex_consumption_regions():
    decorators = BicepFile.load(MAIN_BICEP).decorators("location")
    assert "allowed" in decorators, "main.bicep: `location` needs @allowed (Flex Consumption regions)"
    (allowed,) = decorators["allowed"]
    assert allowed == flex_regions(), set(allowed) ^ set(flex_regions())
    assert decorators["metadata"] == [{"azd": {"type": "location"}}]
    table = json.loads(FLEX_REGIONS.read_text(encoding="utf-8"))
    assert table["repository"] and re.fullmatch(r"[0-9a-f]{40}", table["commit"]) and table["retrieved"]
    assert len(set(allowed)) == len(allowed) and "eastus2euap" not in allowed


def test_the_region_check_fails_without_allowed(tmp_path):
    open_location = tmp_path / "main.bicep"
    open_location.write_text("@minLength(1)\nparam location string\n", encoding="utf-8")
    assert "allowed" not in BicepFile.load(open_location).decorators("location")


def test_storage_and_key_vault_are_locked_down():
    (account,) = [r for r in resources_of(INFRA / "app" / "storage.bicep",
                                          "Microsoft.Storage/storageAccounts")]
    props = account[2]["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    (vault,) = resources_of(INFRA / "app" / "keyvault.bicep", "Microsoft.KeyVault/vaults")
    props = vault[2]["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    (insights,) = resources_of(INFRA / "app" / "monitoring.bicep", "Microsoft.Insights/components")
    assert insights[2]["properties"]["DisableLocalAuth"] is True


# ---------------------------------------------------------------------------------------------
# Roles: ids from a vendored public table, Key Vault roles derived from the code
# ---------------------------------------------------------------------------------------------

def builtin_roles(path: Path = BUILTIN_ROLES) -> dict[str, str]:
    """Role name -> role definition id, from the Azure Verified Modules' ``builtInRoleNames``
    (vendored in ``tests/data``; every module that names a role gives it the same id)."""
    table = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for module in table["modules"].values():
        for name, guid in module["roles"].items():
            assert out.setdefault(name, guid) == guid, f"{name}: two ids in {path.name}"
    return out


def role_names_by_id(path: Path = BUILTIN_ROLES) -> dict[str, str]:
    """Role definition id -> name (a role one module marks '(Preview)' keeps its plain name)."""
    out: dict[str, str] = {}
    for name, guid in sorted(builtin_roles(path).items(), key=lambda item: len(item[0])):
        out.setdefault(guid, name)
    return out


def camel(role_name: str) -> str:
    """'Key Vault Secrets Officer' -> 'keyVaultSecretsOfficer' (the keys of rbac.bicep ``roles``)."""
    words = re.sub(r"\(.*?\)", "", role_name).split()
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


@dataclass(frozen=True)
class Grant:
    """One role assignment of ``infra/app/rbac.bicep``."""

    resource: str  #: symbolic name of the assignment
    role: str  #: role name (from the vendored table), or the unknown id
    scope: str  #: symbolic name of the resource it is scoped to
    principal: str  #: ``principalId`` (the app's identity) or ``operatorPrincipalId``


def rbac_grants(path: Path = RBAC_BICEP) -> list[Grant]:
    rbac = BicepFile.load(path)
    ids = rbac.value(rbac.variables()["roles"])
    names = role_names_by_id()
    grants = []
    for resource, _, body in rbac.resources():
        if "roleDefinitionId" not in body.get("properties", {}):
            continue
        match = re.search(r"\broles\.(\w+)", str(body["properties"]["roleDefinitionId"]))
        assert match, f"{resource}: roleDefinitionId must be one of `var roles`"
        guid = ids[match.group(1)]
        grants.append(Grant(resource, names.get(guid, guid), str(body["scope"]),
                            str(body["properties"]["principalId"])))
    return grants


def check_role_ids(ids: dict[str, str], published: dict[str, str]) -> list[str]:
    """``var roles`` of rbac.bicep against the published built-in role ids, by id and by name."""
    names = {guid: name for name, guid in published.items()}
    problems = []
    for key, guid in ids.items():
        if guid not in names:
            problems.append(f"roles.{key} = {guid}: not a built-in role id of the vendored table "
                            f"{BUILTIN_ROLES.name}")
        elif all(camel(name) != key for name, g in published.items() if g == guid):
            problems.append(f"roles.{key} = {guid}: that id is {names[guid]!r} (key {camel(names[guid])})")
    return problems


#: The Key Vault SDK client classes the application may construct, and the one built-in role the app
#: identity needs on the vault for what it does with each: SecretClient sets, reads, soft-deletes and
#: recovers secrets (Secrets User cannot write); CertificateClient creates and imports certificates
#: (Certificates Officer); CryptographyClient and KeyClient sign with a certificate's key (Crypto User:
#: read keys and sign/verify, no key management).
KEY_VAULT_CLIENT_ROLES = {
    "SecretClient": "Key Vault Secrets Officer",
    "CertificateClient": "Key Vault Certificates Officer",
    "CryptographyClient": "Key Vault Crypto User",
    "KeyClient": "Key Vault Crypto User",
}
#: SDK methods that hand out a client without naming its class.
KEY_VAULT_CLIENT_FACTORIES = {"get_cryptography_client": "CryptographyClient"}


@dataclass(frozen=True)
class ClientUse:
    client: str  #: class name, or ``?Name`` for an azure.keyvault client the table does not know
    where: str


def find_key_vault_clients(root: Path, *, code_dirs: Iterable[str] = CODE_DIRS) -> list[ClientUse]:
    """Every construction of a Key Vault SDK client (``SecretClient(...)``, ``x.KeyClient(...)``,
    ``key_client.get_cryptography_client(...)``) in the application's sources, and every import from
    ``azure.keyvault`` of a ``*Client`` that :data:`KEY_VAULT_CLIENT_ROLES` does not know."""
    found: list[ClientUse] = []
    for code_dir in code_dirs:
        for path in sorted((root / code_dir).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("azure.keyvault"):
                    for alias in node.names:
                        if alias.name.endswith("Client") and alias.name not in KEY_VAULT_CLIENT_ROLES:
                            found.append(ClientUse(f"?{alias.name}", f"{rel}:{node.lineno}"))
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else (
                    func.attr if isinstance(func, ast.Attribute) else None)
                if name in KEY_VAULT_CLIENT_ROLES:
                    found.append(ClientUse(name, f"{rel}:{node.lineno}"))
                elif name in KEY_VAULT_CLIENT_FACTORIES:
                    found.append(ClientUse(KEY_VAULT_CLIENT_FACTORIES[name], f"{rel}:{node.lineno}"))
    return found


def check_key_vault_roles(uses: Iterable[ClientUse], grants: Iterable[Grant],
                          settings: Iterable[Setting], bicep_settings: Collection[str]) -> list[str]:
    """Key Vault roles of the app identity against the clients the code constructs, both ways."""
    uses = list(uses)
    problems = [f"{u.where}: imports Key Vault client {u.client[1:]}, which KEY_VAULT_CLIENT_ROLES "
                "does not map to a role" for u in uses if u.client.startswith("?")]
    needed: dict[str, list[str]] = {}
    for use in uses:
        if use.client in KEY_VAULT_CLIENT_ROLES:
            needed.setdefault(KEY_VAULT_CLIENT_ROLES[use.client], []).append(f"{use.client} at {use.where}")
    app_vault = [g for g in grants if g.principal == "principalId" and g.role.startswith("Key Vault")]
    granted = {g.role for g in app_vault if g.scope == "vault"}
    for grant in app_vault:
        if grant.scope != "vault":
            problems.append(f"{grant.resource}: {grant.role} is scoped to {grant.scope}, not the vault")
    for role, why in sorted(needed.items()):
        if role not in granted:
            problems.append(f"the code constructs {', '.join(why)}: the app identity needs {role!r} on "
                            "the vault, which infra/app/rbac.bicep does not grant")
    for role in sorted(granted - set(needed)):
        problems.append(f"infra/app/rbac.bicep grants the app identity {role!r} on the vault, but no "
                        "code constructs a Key Vault client that needs it")
    if needed:
        declared = {s.name: s for s in settings}
        if "KEY_VAULT_URI" not in declared or declared["KEY_VAULT_URI"].local_only:
            problems.append("the code uses Key Vault, but KEY_VAULT_URI is not a deployed setting in SETTINGS")
        if "KEY_VAULT_URI" not in bicep_settings:
            problems.append("the code uses Key Vault, but infra/app/api.bicep does not set KEY_VAULT_URI")
    return problems


#: Roles of the app's identity besides Key Vault (those follow the code, above): what the Functions
#: host and the storage and telemetry clients do, each on its one resource (infra/README.md).
APP_ROLES = {
    "blobDataOwner": ("Storage Blob Data Owner", "storage"),
    "tableDataContributor": ("Storage Table Data Contributor", "storage"),
    "queueDataContributor": ("Storage Queue Data Contributor", "storage"),
    "metricsPublisher": ("Monitoring Metrics Publisher", "applicationInsights"),
}
OPERATOR_ROLES = {"operatorSecretsOfficer": ("Key Vault Secrets Officer", "vault")}


def test_role_ids_are_the_published_built_in_ids():
    rbac = BicepFile.load(RBAC_BICEP)
    ids = rbac.value(rbac.variables()["roles"])
    assert ids and check_role_ids(ids, builtin_roles()) == []


def test_the_role_id_check_fails_on_a_typo_or_a_swapped_id():
    ids = {"keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd8",  # one digit off
           "storageBlobDataOwner": builtin_roles()["Storage Blob Data Contributor"],
           "storageQueueDataContributor": builtin_roles()["Storage Queue Data Contributor"]}
    problems = check_role_ids(ids, builtin_roles())
    assert len(problems) == 2, problems
    assert "roles.keyVaultSecretsOfficer" in problems[0] and "not a built-in role id" in problems[0]
    assert "'Storage Blob Data Contributor'" in problems[1]


def test_the_vendored_role_table_names_its_source():
    table = json.loads(BUILTIN_ROLES.read_text(encoding="utf-8"))
    assert table["repository"] == "Azure/bicep-registry-modules" and table["retrieved"]
    for key, module in table["modules"].items():
        assert module["path"] == f"{key}/main.bicep" and re.fullmatch(r"[0-9a-f]{40}", module["commit"])
        for name, guid in module["roles"].items():
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", guid), name
    note = (BUILTIN_ROLES.parent / "README.md").read_text(encoding="utf-8")
    assert BUILTIN_ROLES.name in note and "Azure/bicep-registry-modules" in note
    # The modules agree with each other where they name the same role (builtin_roles asserts it).
    assert len(builtin_roles()) >= 35


def test_the_identity_gets_only_the_roles_the_app_needs():
    grants = {g.resource: g for g in rbac_grants()}
    expected = {**APP_ROLES, **OPERATOR_ROLES}
    vault_roles = {g.resource for g in grants.values()
                   if g.principal == "principalId" and g.role.startswith("Key Vault")}
    assert set(grants) - vault_roles == set(expected), set(grants) ^ set(expected)
    for resource, (role, scope) in expected.items():
        grant = grants[resource]
        assert (grant.role, grant.scope) == (role, scope), grant
        assert grant.principal == ("operatorPrincipalId" if resource in OPERATOR_ROLES else "principalId")
    for path in bicep_files():  # no role assignment outside rbac.bicep
        if path.name != "rbac.bicep":
            assert not resources_of(path, "Microsoft.Authorization/roleAssignments"), path
    rbac = BicepFile.load(RBAC_BICEP)
    used = {g.role for g in grants.values()}
    unused = {k for k, v in rbac.value(rbac.variables()["roles"]).items()
              if role_names_by_id().get(v) not in used}
    assert not unused, f"rbac.bicep `roles` entries no assignment uses: {unused}"


def test_key_vault_roles_follow_the_clients_the_code_constructs():
    uses = find_key_vault_clients(ROOT)
    assert any(u.client == "SecretClient" and u.where.startswith("shared/bootstrap.py") for u in uses), uses
    problems = check_key_vault_roles(uses, rbac_grants(), SETTINGS, bicep_app_settings())
    assert problems == [], "\n".join(problems)


def test_the_key_vault_check_fails_both_ways(tmp_path):
    root = _synthetic_code(tmp_path, (
        "from azure.keyvault.certificates import CertificateClient\n"
        "from azure.keyvault.keys import KeyClient\n"
        "from azure.keyvault.administration import KeyVaultAccessControlClient\n"
        "certificates = CertificateClient(uri, credential)\n"
        "signer = KeyClient(uri, credential).get_cryptography_client('app-cert')\n"
    ))
    uses = find_key_vault_clients(root)
    assert sorted(u.client for u in uses) == ["?KeyVaultAccessControlClient", "CertificateClient",
                                              "CryptographyClient", "KeyClient"], uses
    uses = [u for u in uses if not u.client.startswith("?")] + [u for u in uses if u.client.startswith("?")]
    secrets_only = [g for g in rbac_grants() if g.role == "Key Vault Secrets Officer"]
    problems = check_key_vault_roles(uses, secrets_only, SETTINGS, bicep_app_settings())
    text = "\n".join(problems)
    assert "KeyVaultAccessControlClient, which KEY_VAULT_CLIENT_ROLES does not map" in text
    assert "needs 'Key Vault Certificates Officer' on the vault" in text
    assert "needs 'Key Vault Crypto User' on the vault" in text
    assert "grants the app identity 'Key Vault Secrets Officer' on the vault, but no code" in text
    # What app profiles will need, granted: passes; granted at the wrong scope: reported.
    grants = [Grant("c", "Key Vault Certificates Officer", "vault", "principalId"),
              Grant("k", "Key Vault Crypto User", "vault", "principalId")]
    assert check_key_vault_roles(uses[:-1], grants, SETTINGS, bicep_app_settings()) == []
    wrong = [Grant("c", "Key Vault Certificates Officer", "vault", "principalId"),
             Grant("k", "Key Vault Crypto User", "storage", "principalId")]
    assert any("scoped to storage" in p for p in check_key_vault_roles(uses[:-1], wrong, SETTINGS,
                                                                        bicep_app_settings()))
    no_uri = {k: v for k, v in bicep_app_settings().items() if k != "KEY_VAULT_URI"}
    assert any("does not set KEY_VAULT_URI" in p for p in check_key_vault_roles(uses[:-1], grants, SETTINGS,
                                                                                 no_uri))


def test_function_app_storage_and_key_vault_send_diagnostics():
    scopes = set()
    for path in bicep_files():
        for _, _, body in resources_of(path, "Microsoft.Insights/diagnosticSettings"):
            assert body["properties"]["workspaceId"] == "logAnalyticsWorkspaceId"
            scopes.add(str(body["scope"]))
    assert {"functionApp", "storage", "vault", "storage::blobServices", "storage::queueServices",
            "storage::tableServices"} <= scopes


def test_readme_explains_every_setting():
    """README's settings table names every setting of the contract and of the sample."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = {s.name for s in SETTINGS} | set(sample_values()) - {"FUNCTIONS_WORKER_RUNTIME"}
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"README.md does not explain: {missing}"
