"""The deployment templates (infra/), parsed with pycep-parser and held to the deployment policy.

Each policy check also runs against a broken copy of a template, to show it fails there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lark.exceptions import LarkError

from shared.config import APP_SETTINGS, DEPLOYED_SETTINGS, HOST_SETTINGS, LOCAL_ONLY_SETTINGS
from tests.deploy import bicep_support as bicep

HOST_JSON = json.loads((bicep.ROOT / "host.json").read_text())


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    return bicep.parse_all()


def test_every_bicep_file_parses(templates: dict[str, dict]) -> None:
    assert set(templates) == {
        "main.bicep",
        "app/identity.bicep",
        "app/monitoring.bicep",
        "app/storage.bicep",
        "app/keyvault.bicep",
        "app/function-app.bicep",
        "app/rbac.bicep",
    }
    modules = templates["main.bicep"]["modules"]
    for module in modules.values():
        assert module["type"] == "local" and module["detail"]["path"] in templates, module


@pytest.mark.parametrize(
    "check",
    [
        bicep.no_secrets_in_settings_or_outputs,
        bicep.storage_hardened,
        bicep.site_hardened,
        bicep.identity_storage_settings,
        bicep.key_vault_references,
        bicep.role_assignments,
    ],
)
def test_templates_follow_the_policy(templates: dict[str, dict], check) -> None:
    assert check(templates) == []


def test_telemetry_is_opentelemetry_with_entra_ingestion(templates: dict[str, dict]) -> None:
    assert bicep.monitoring(templates, HOST_JSON) == []


def test_app_settings_are_exactly_the_settings_the_code_reads(templates: dict[str, dict]) -> None:
    deployed = set(bicep.app_settings(templates))
    assert deployed == set(DEPLOYED_SETTINGS)
    # Both ways: nothing the code reads is missing from Azure unless it is local-only, and nothing set in
    # Azure is unknown to the code unless the host or the worker reads it.
    assert set(APP_SETTINGS) - deployed == set(LOCAL_ONLY_SETTINGS)
    assert deployed - set(APP_SETTINGS) == set(HOST_SETTINGS)


def test_host_logs_one_line_per_request_and_the_sdks_at_warning() -> None:
    levels = HOST_JSON["logging"]["logLevel"]
    assert levels["Host.Results"] == "Information"  # the request itself
    assert levels["Function"] == "Warning"  # no "Executing"/"Executed" pair per invocation
    assert levels["default"] == "Warning"
    assert all(levels[k] == "Warning" for k in levels if k.startswith("Azure."))


def test_azure_yaml_deploys_the_root_as_a_python_function_app_and_runs_the_entra_hooks() -> None:
    import yaml

    doc = yaml.safe_load((bicep.ROOT / "azure.yaml").read_text())
    assert doc["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    assert doc["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    for hook in ("preprovision", "postprovision"):
        for shell in ("posix", "windows"):
            assert "infra/hooks/entra_app.py" in doc["hooks"][hook][shell]["run"]
    params = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(params) == set(bicep.parse_all()["main.bicep"]["parameters"]) - {"instanceMemoryMB"}


# ------------------------------------------------------------------------------- broken copies fail


def _broken(tmp_path: Path, file: str, old: str, new: str) -> dict[str, dict]:
    infra = bicep.copy_infra(tmp_path)
    path = infra / file
    source = path.read_text()
    assert old in source, old
    path.write_text(source.replace(old, new, 1))
    return bicep.parse_all(infra)


BREAKS = [
    (bicep.storage_hardened, "app/storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeyAccess: true",
     "allowSharedKeyAccess"),
    (bicep.storage_hardened, "app/storage.bicep", "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'",
     "minimumTlsVersion"),
    (bicep.site_hardened, "app/function-app.bicep", "httpsOnly: true", "httpsOnly: false", "httpsOnly"),
    (bicep.site_hardened, "app/function-app.bicep", "name: 'http'\n            instanceCount: 1",
     "name: 'http'\n            instanceCount: 0", "always-ready"),
    (bicep.site_hardened, "app/function-app.bicep", "keyVaultReferenceIdentity: identityId\n", "",
     "Key Vault references"),
    (bicep.no_secrets_in_settings_or_outputs, "app/function-app.bicep", "TABLE_PREFIX: ''",
     "TABLE_PREFIX: ''\n    AzureWebJobsStorage: 'DefaultEndpointsProtocol=https;AccountName=${storage.name};"
     "AccountKey=${storage.listKeys().keys[0].value}'", "AzureWebJobsStorage"),
    (bicep.no_secrets_in_settings_or_outputs, "main.bicep", "output AZURE_LOCATION string = location",
     "output AZURE_LOCATION string = location\noutput STORAGE_KEY string = listKeys('x', '2023-05-01').keys[0].value",
     "STORAGE_KEY"),
    (bicep.key_vault_references, "app/function-app.bicep",
     "CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${clientSecretName}/)'",
     "CLIENT_SECRET: 'plain-value'", "CLIENT_SECRET"),
    (bicep.key_vault_references, "app/keyvault.bicep", "enablePurgeProtection: true", "enablePurgeProtection: false",
     "enablePurgeProtection"),
    (bicep.identity_storage_settings, "app/function-app.bicep",
     "AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue\n", "",
     "queueServiceUri"),
    (bicep.role_assignments, "app/rbac.bicep", "  scope: storage\n  properties: {\n    roleDefinitionId: "
     "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)",
     "  properties: {\n    roleDefinitionId: "
     "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)",
     "not scoped to one resource"),
    (bicep.role_assignments, "app/rbac.bicep", "roles.storageTableDataContributor)\n    principalId: appPrincipalId",
     "roles.storageTableDataContributor)\n    principalId: deployerPrincipalId", "deployer"),
]


@pytest.mark.parametrize(("check", "file", "old", "new", "named"), BREAKS, ids=[b[4] for b in BREAKS])
def test_a_broken_copy_of_a_template_fails_its_check(tmp_path: Path, check, file, old, new, named) -> None:
    problems = check(_broken(tmp_path, file, old, new))
    assert any(named in problem for problem in problems), problems


def test_a_setting_added_to_the_templates_alone_fails_the_settings_check(tmp_path: Path) -> None:
    templates = _broken(tmp_path, "app/function-app.bicep", "TABLE_PREFIX: ''", "TABLE_PREFIX: ''\n    EXTRA: 'x'")
    assert set(bicep.app_settings(templates)) - set(DEPLOYED_SETTINGS) == {"EXTRA"}


def test_opentelemetry_mode_off_fails_the_monitoring_check(templates: dict[str, dict]) -> None:
    host = {k: v for k, v in HOST_JSON.items() if k != "telemetryMode"}
    assert bicep.monitoring(templates, host) == ["host.json telemetryMode is not OpenTelemetry"]


def test_a_template_with_a_syntax_error_does_not_parse(tmp_path: Path) -> None:
    infra = bicep.copy_infra(tmp_path)
    path = infra / "app" / "storage.bicep"
    path.write_text(path.read_text().replace("allowSharedKeyAccess: false", "allowSharedKeyAccess false"))
    with pytest.raises(LarkError):
        bicep.parse_all(infra)


def test_every_setting_a_trigger_binds_is_deployed() -> None:
    import re

    functions = Path(__file__).resolve().parents[2] / "functions"
    bound = {name for path in functions.glob("*.py") for name in re.findall(r'"%([A-Za-z_]+)%"', path.read_text())}
    assert bound and bound <= set(DEPLOYED_SETTINGS), bound - set(DEPLOYED_SETTINGS)


def test_one_instance_serves_as_many_requests_at_once_as_the_worker_has_threads(templates: dict[str, dict]) -> None:
    # A recruiter's concurrent queries share one worker's mailbox limiter only if one instance takes them
    # and its worker has a thread for each (shared/config.py WORKER_THREADS).
    from devtools.stack import service_settings
    from shared.config import WORKER_THREADS

    scale = bicep.the_site(templates)["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == WORKER_THREADS
    assert bicep.text(bicep.app_settings(templates)["PYTHON_THREADPOOL_THREAD_COUNT"]) == f'"{WORKER_THREADS}"'
    local = service_settings(
        authority_host="https://login.example",
        graph_url="https://graph.example/v1.0",
        ca_bundle="ca.pem",
        storage="UseDevelopmentStorage=true",
        public_base_url="http://localhost:7071",
        function_key="key",
    )
    assert local["PYTHON_THREADPOOL_THREAD_COUNT"] == str(WORKER_THREADS)
    sample = json.loads((bicep.ROOT / "local.settings.sample.json").read_text())["Values"]
    assert sample["PYTHON_THREADPOOL_THREAD_COUNT"] == str(WORKER_THREADS)
