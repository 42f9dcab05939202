"""The dependency rule and cold start, checked by scanning imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDKS = (
    "msal",
    "httpx",
    "requests",
    "azure.data",
    "azure.storage",
    "azure.keyvault",
    "azure.identity",
    "azure.core",
    "cryptography",
)
CORE_ALLOWED = (
    "shared.models",
    "shared.ports",
    "shared.errors",
    "shared.config",
    "shared.session_guard",
    "shared.tenant_consent",
    "shared.tokens",
    "shared.urls",
    "shared.conflicts",
    "shared.worker_cache",
    "shared.consent",
    "shared.signin",
    "shared.readiness",
    "shared.lookups",
    "shared.health",
    "shared.timezones",  # pure: zoneinfo, tzdata and tzlocal.windows_tz (a CLDR table), no I/O at import
    "shared.slots",
    "shared.loops",
    "shared.availability_request",
    "shared.text",
    "shared.booking_request",
    "shared.booking",
    "shared.flows",
    "shared.maintenance",
    "shared.ncrontab",  # pure: the timer schedule parser
    "shared.webhooks",
    "shared.subscriptions",
    "shared.notifications",
    "shared.write_rule",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_function_modules_import_only_shared_and_azure_functions() -> None:
    for path in (ROOT / "functions").glob("*.py"):
        for name in imports_of(path):
            assert not name.startswith(SDKS), f"{path.name} imports {name}"
            assert not name.startswith("shared.adapters"), f"{path.name} imports an adapter: {name}"


def test_core_modules_import_no_sdk_and_no_adapter() -> None:
    core = [p for p in (ROOT / "shared").glob("*.py") if p.name not in {"bootstrap.py", "__init__.py"}]
    assert core
    for path in core:
        for name in imports_of(path):
            assert not name.startswith(SDKS), f"{path.name} imports {name}"
            assert not name.startswith("shared.adapters"), f"{path.name} imports {name}"
            if name.startswith("shared."):
                assert name in CORE_ALLOWED, f"{path.name} imports {name}"


def test_importing_the_app_loads_no_sdk_and_registers_every_function() -> None:
    code = (
        "import json, sys; import function_app; "
        "print(json.dumps({'modules': sorted(sys.modules), "
        "'functions': [f.get_function_name() for f in function_app.app.get_functions()]}))"
    )
    env = {"PATH": "/usr/bin:/bin"}  # no settings at all: indexing must still succeed
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    loaded = [m for m in report["modules"] if m.startswith(SDKS)]
    assert loaded == []
    assert {
        "health",
        "consent_start",
        "consent_callback",
        "auth_login",
        "auth_callback",
        "me",
        "tenant_readiness",
    } <= set(report["functions"])


def test_a_misspelt_or_ill_typed_container_override_fails_type_checking(tmp_path: Path) -> None:
    snippet = tmp_path / "overrides.py"
    snippet.write_text(
        "from shared.bootstrap import Container\n"
        "from shared.config import Settings\n"
        "Container(Settings(), tenant=object())\n"  # misspelt: tenants
        "Container(Settings(), graph=object())\n"  # not a GraphGateway
        "reveal_type(Container(Settings()).tenants)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert 'Unexpected keyword argument "tenant"' in out.stdout, out.stdout
    assert 'Argument "graph" to "Container" has incompatible type "object"' in out.stdout, out.stdout
    assert 'Revealed type is "shared.ports.TenantStore"' in out.stdout, out.stdout


def test_no_assert_statement_in_the_service_code() -> None:
    """`python -O` strips asserts, and a failed one is a 500: input and invariants are checked with `if`."""
    found = []
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").glob("*.py"), ROOT / "function_app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assert):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"assert statements in the service code: {found}"
