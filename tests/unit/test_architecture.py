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
# The kernel every capability uses: settings, errors, models, ports, the service's URLs, request fields,
# text checks, time zones, ETag retries, the per-worker memory and health. It imports nothing else of ours.
KERNEL = {
    "shared.config",
    "shared.errors",
    "shared.models",
    "shared.ports",
    "shared.urls",
    "shared.fields",
    "shared.text",
    "shared.timezones",  # pure: zoneinfo, tzdata and tzlocal.windows_tz (a CLDR table), no I/O at import
    "shared.conflicts",
    "shared.worker_cache",
    "shared.memo",
    "shared.heap",
    "shared.threads",
    "shared.health",
}
CAPABILITIES = ("identity", "scheduling", "booking", "sync", "cache", "email")
# The named modules one capability calls in another; nothing else crosses, and never a private name.
CROSSINGS = {
    ("scheduling", "shared.identity.guard"),  # the two-token guard: RequestContext, with_user_access
    ("booking", "shared.identity.guard"),
    ("booking", "shared.identity.tokens"),
    ("booking", "shared.identity.readiness"),  # RECRUITING_GROUP: who holds the shared mailboxes
    ("booking", "shared.sync.subscriptions"),  # ensure_mailbox_subscription for a mailbox we write to
    ("booking", "shared.cache.keeper"),  # note_written: our own writes make those people cold at once
    ("identity", "shared.booking.write_rule"),  # readiness checks a tenant mailbox's purpose by the same rule
    ("sync", "shared.identity.tokens"),
    ("sync", "shared.booking.outlook"),  # the worker hands what Outlook did to our events to booking
    ("sync", "shared.cache.keeper"),  # the worker feeds the busy cache: notifications, lifecycle, warm-ups
    ("scheduling", "shared.cache.reader"),  # availability reads warm interviewers from the busy cache
    ("scheduling", "shared.cache.keeper"),  # and notes who was asked about
    ("cache", "shared.identity.tokens"),  # the app's token for delta and mailbox settings
    ("cache", "shared.sync.subscriptions"),  # ensure_mailbox_subscription: reuse the sync subscription
    ("cache", "shared.sync.intake"),  # encode_messages: the warm-up message for the worker
    ("email", "shared.identity.tokens"),  # the recruiter's delegated token for Mail.Send and Mail.Read
}


def _shared_modules() -> list[Path]:
    return [p for p in (ROOT / "shared").rglob("*.py") if "adapters" not in p.parts]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every ``from shared... import name`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.module, alias.name) for alias in node.names)
    return found


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
            assert not name.startswith("function_app"), f"{path.name} imports the app it is part of"


def test_the_layout_is_a_kernel_and_one_package_per_capability() -> None:
    top = {p.stem for p in (ROOT / "shared").glob("*.py")} - {"__init__", "bootstrap"}
    assert {f"shared.{name}" for name in top} == KERNEL
    packages = {p.parent.name for p in (ROOT / "shared").glob("*/__init__.py")} - {"adapters"}
    assert packages == set(CAPABILITIES)
    for name in CAPABILITIES:
        doc = ast.get_docstring(ast.parse((ROOT / "shared" / name / "__init__.py").read_text()))
        assert doc, f"shared/{name} says what it owns"


def test_core_modules_import_no_sdk_and_no_adapter() -> None:
    core = [p for p in _shared_modules() if p.name != "bootstrap.py"]
    assert len(core) > len(KERNEL)
    for path in core:
        for name in imports_of(path):
            assert not name.startswith(SDKS), f"{path.name} imports {name}"
            assert not name.startswith("shared.adapters"), f"{path.name} imports {name}"


def test_the_kernel_imports_only_the_kernel() -> None:
    for path in _shared_modules():
        module = _module_name(path)
        if module not in KERNEL:
            continue
        for name in imports_of(path):
            if name.startswith("shared"):
                assert name in KERNEL, f"{module} (kernel) imports {name}"


def test_capabilities_reach_each_other_only_through_named_public_functions() -> None:
    checked = 0
    for path in _shared_modules():
        parts = _module_name(path).split(".")
        if len(parts) < 3 or parts[1] not in CAPABILITIES:
            continue
        checked += 1
        home = parts[1]
        for name in imports_of(path):
            if not name.startswith("shared.") or name in KERNEL or name.startswith(f"shared.{home}"):
                continue
            assert (home, name) in CROSSINGS, f"{'.'.join(parts)} reaches into {name}"
        for module, imported in _imported_names(path):
            if module.startswith("shared.") and not module.startswith(f"shared.{home}"):
                assert not imported.startswith("_"), f"{'.'.join(parts)} takes the private {module}.{imported}"
    assert checked > 10


def test_adapters_import_the_kernel_only() -> None:
    for path in (ROOT / "shared" / "adapters").rglob("*.py"):
        for name in imports_of(path):
            if name.startswith("shared.") and not name.startswith("shared.adapters"):
                assert name in KERNEL, f"adapter {path.name} imports {name}"


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


def test_importing_the_app_loads_no_template_or_calendar_library() -> None:
    """Candidate email's libraries (Jinja2, nh3, icalendar) load on the first email, never at cold start."""
    code = "import json, sys; import function_app; print(json.dumps(sorted(sys.modules)))"
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    loaded = [m for m in json.loads(out.stdout) if m.split(".")[0] in ("jinja2", "nh3", "icalendar")]
    assert loaded == []
