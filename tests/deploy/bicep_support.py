"""Parsed Bicep templates (pycep-parser) and the deployment policy checks the tests apply to them.

Each check returns the violations it finds (empty when the templates comply), so a test can show a
check failing on a broken copy of a template as well as passing on the real one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"

ROLE_IDS = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
# What the app's identity is given, and on which kind of resource.
APP_ROLES = {
    "Storage Blob Data Owner": "Microsoft.Storage/storageAccounts",
    "Storage Queue Data Contributor": "Microsoft.Storage/storageAccounts",
    "Storage Table Data Contributor": "Microsoft.Storage/storageAccounts",
    "Key Vault Secrets User": "Microsoft.KeyVault/vaults",
    "Monitoring Metrics Publisher": "Microsoft.Insights/components",
}
# Words that must never appear in an app setting's or an output's value.
FORBIDDEN_IN_VALUES = (
    "listkeys",
    "listsecrets",
    "listaccountsas",
    "listservicesas",
    "accountkey",
    "sharedaccesssignature",
)


def copy_infra(target: Path) -> Path:
    shutil.copytree(INFRA, target / "infra")
    return target / "infra"


def parse_all(infra: Path = INFRA) -> dict[str, dict[str, Any]]:
    """Every .bicep file under ``infra``, parsed, by its path relative to ``infra``."""
    parser = BicepParser()
    return {str(path.relative_to(infra)): parser.parse(file_path=path) for path in sorted(infra.rglob("*.bicep"))}


def text(value: Any) -> str:
    return json.dumps(value, default=str)


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's configuration, through a condition (``= if (...) {...}``) when it has one."""
    config: dict[str, Any] = resource["config"]
    return config["config"] if "condition" in config and "config" in config else config


def resources(templates: dict[str, dict[str, Any]], kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(file, symbol, resource) of every declared (not ``existing``) resource of this type."""
    found = []
    for file, doc in templates.items():
        for symbol, resource in (doc.get("resources") or {}).items():
            if resource["type"] == kind and not resource.get("existing"):
                found.append((file, symbol, resource))
    return found


def app_settings(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    settings = [r for _, _, r in resources(templates, "Microsoft.Web/sites/config") if body(r)["name"] == "appsettings"]
    if len(settings) != 1:
        raise AssertionError(f"expected one appsettings resource, found {len(settings)}")
    properties: dict[str, Any] = body(settings[0])["properties"]
    return properties


def the_site(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    sites = resources(templates, "Microsoft.Web/sites")
    if len(sites) != 1:
        raise AssertionError(f"expected one site, found {len(sites)}")
    return body(sites[0][2])


# --------------------------------------------------------------------------------------------- checks


def no_secrets_in_settings_or_outputs(templates: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, value in app_settings(templates).items():
        rendered = text(value).lower()
        for word in FORBIDDEN_IN_VALUES:
            if word in rendered:
                problems.append(f"app setting {name} uses {word}")
        if "connectionstring" in rendered and name != "APPLICATIONINSIGHTS_CONNECTION_STRING":
            problems.append(f"app setting {name} holds a connection string")
        if name == "AzureWebJobsStorage":
            problems.append("AzureWebJobsStorage is a connection string: use the identity-based __ settings")
        is_secret = ("SECRET" in name.upper() or "PASSWORD" in name.upper()) and not name.endswith("_NAME")
        if is_secret and not rendered.startswith(
            '"@microsoft.keyvault(secreturi='
        ):
            problems.append(f"app setting {name} is a secret but not a Key Vault reference")
    for file, doc in templates.items():
        secure = {p for p, d in (doc.get("parameters") or {}).items() if "secure" in text(d.get("decorators"))}
        for name, output in (doc.get("outputs") or {}).items():
            rendered = text(output).lower()
            for word in (*FORBIDDEN_IN_VALUES, "connectionstring", "secret"):
                if word in rendered and not name.endswith("SECRET_NAME") and "secretname" not in rendered:
                    problems.append(f"{file}: output {name} exposes {word}")
            for param in secure:
                if f'"{param.lower()}"' in rendered:
                    problems.append(f"{file}: output {name} exposes the secure parameter {param}")
    return problems


def storage_hardened(templates: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    accounts = resources(templates, "Microsoft.Storage/storageAccounts")
    if not accounts:
        problems.append("no storage account")
    for file, symbol, resource in accounts:
        props = body(resource).get("properties", {})
        expected = {
            "allowSharedKeyAccess": False,
            "allowBlobPublicAccess": False,
            "minimumTlsVersion": "TLS1_2",
            "supportsHttpsTrafficOnly": True,
        }
        for key, want in expected.items():
            if props.get(key) != want:
                problems.append(f"{file}:{symbol} {key} is {props.get(key)!r}, want {want!r}")
    return problems


def site_hardened(templates: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    site = the_site(templates)
    props = site.get("properties", {})
    if props.get("httpsOnly") is not True:
        problems.append("site httpsOnly is not true")
    if props.get("siteConfig", {}).get("minTlsVersion") != "1.2":
        problems.append("site minimum TLS is not 1.2")
    if props.get("siteConfig", {}).get("ftpsState") != "Disabled":
        problems.append("site FTPS is not disabled")
    identity = site.get("identity", {})
    if identity.get("type") != "UserAssigned":
        problems.append("site identity is not user-assigned")
    if props.get("keyVaultReferenceIdentity") != "identityId":
        problems.append("Key Vault references do not resolve through the user-assigned identity")
    runtime = props.get("functionAppConfig", {}).get("runtime", {})
    if runtime != {"name": "python", "version": "3.11"}:
        problems.append(f"runtime is {runtime}, want python 3.11")
    scale = props.get("functionAppConfig", {}).get("scaleAndConcurrency", {})
    if scale.get("maximumInstanceCount") != "maximumInstanceCount":
        problems.append("the instance cap is not the maximumInstanceCount parameter")
    ready = {entry.get("name"): entry.get("instanceCount") for entry in scale.get("alwaysReady") or []}
    # The webhook is an HTTP function: on Flex Consumption HTTP functions scale as the 'http' group.
    if not isinstance(ready.get("http"), int) or ready["http"] < 1:
        problems.append("no always-ready instance for the webhook (the 'http' group)")
    plans = resources(templates, "Microsoft.Web/serverfarms")
    if not plans or any(body(p)["sku"] != {"tier": "FlexConsumption", "name": "FC1"} for _, _, p in plans):
        problems.append("the plan is not Flex Consumption (FC1)")
    return problems


def identity_storage_settings(templates: dict[str, dict[str, Any]]) -> list[str]:
    settings = app_settings(templates)
    problems = []
    if settings.get("AzureWebJobsStorage__credential") != "managedidentity":
        problems.append("AzureWebJobsStorage__credential is not managedidentity")
    if settings.get("AzureWebJobsStorage__clientId") != "identityClientId":
        problems.append("AzureWebJobsStorage__clientId is not the identity's client id")
    for service in ("blob", "queue", "table"):
        value = text(settings.get(f"AzureWebJobsStorage__{service}ServiceUri"))
        if '"primaryEndpoints"' not in value or f'"{service}"' not in value:
            problems.append(f"AzureWebJobsStorage__{service}ServiceUri is not the account's {service} endpoint")
    return problems


def key_vault_references(templates: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    secret = text(app_settings(templates).get("CLIENT_SECRET"))
    if not secret.startswith('"@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/'):
        problems.append("CLIENT_SECRET is not a Key Vault reference to the app's vault")
    vaults = resources(templates, "Microsoft.KeyVault/vaults")
    if not vaults:
        problems.append("no Key Vault")
    for file, symbol, resource in vaults:
        props = body(resource).get("properties", {})
        for key in ("enableRbacAuthorization", "enableSoftDelete", "enablePurgeProtection"):
            if props.get(key) is not True:
                problems.append(f"{file}:{symbol} {key} is not true")
    if resources(templates, "Microsoft.KeyVault/vaults/secrets"):
        problems.append("a template writes a Key Vault secret: secrets are written by the postprovision hook only")
    return problems


def monitoring(templates: dict[str, dict[str, Any]], host_json: dict[str, Any]) -> list[str]:
    problems = []
    if host_json.get("telemetryMode") != "OpenTelemetry":
        problems.append("host.json telemetryMode is not OpenTelemetry")
    components = resources(templates, "Microsoft.Insights/components")
    if not components:
        problems.append("no Application Insights")
    for file, symbol, resource in components:
        props = body(resource).get("properties", {})
        if props.get("DisableLocalAuth") is not True:
            problems.append(f"{file}:{symbol} accepts local (key) authentication")
        if not props.get("WorkspaceResourceId"):
            problems.append(f"{file}:{symbol} is not workspace-based")
    settings = app_settings(templates)
    if settings.get("PYTHON_ENABLE_OPENTELEMETRY") != "true":
        problems.append("the worker does not pass trace context (PYTHON_ENABLE_OPENTELEMETRY)")
    entra_ingestion = '"ClientId=${identityClientId};Authorization=AAD"'
    if text(settings.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")) != entra_ingestion:
        problems.append("telemetry ingestion does not authenticate as the identity")
    return problems


def role_assignments(templates: dict[str, dict[str, Any]]) -> list[str]:
    """Every role assignment names one resource of its own file as its scope and is given to the app's
    identity (the deployer's Key Vault Secrets Officer aside); the app gets exactly ``APP_ROLES``."""
    problems = []
    given: dict[str, str] = {}
    for file, symbol, resource in resources(templates, "Microsoft.Authorization/roleAssignments"):
        doc = templates[file]
        config = body(resource)
        scope = config.get("scope")
        declared = (doc.get("resources") or {}).get(scope) if isinstance(scope, str) else None
        if declared is None:
            problems.append(f"{file}:{symbol} is not scoped to one resource (scope {text(scope)})")
            continue
        props = config.get("properties", {})
        role = next((name for rid, name in ROLE_IDS.items() if rid in text(doc.get("variables")) and
                     _role_key(doc, rid) in text(props.get("roleDefinitionId"))), None)
        if role is None:
            problems.append(f"{file}:{symbol} assigns an unknown role")
            continue
        principal = props.get("principalId")
        if principal == "deployerPrincipalId":
            if role != "Key Vault Secrets Officer" or declared["type"] != "Microsoft.KeyVault/vaults":
                problems.append(f"{file}:{symbol} gives the deployer {role} on {declared['type']}")
            continue
        if principal != "appPrincipalId" or props.get("principalType") != "ServicePrincipal":
            problems.append(f"{file}:{symbol} is not given to the app's identity")
            continue
        if APP_ROLES.get(role) != declared["type"]:
            problems.append(f"{file}:{symbol} gives {role} on {declared['type']}")
        given[role] = declared["type"]
    if given != APP_ROLES:
        problems.append(f"the app's roles are {sorted(given)}, want {sorted(APP_ROLES)}")
    return problems


def _role_key(doc: dict[str, Any], role_id: str) -> str:
    """The key under which a role id sits in the file's ``roles`` variable (the assignments name it)."""
    for key, value in (doc.get("variables", {}).get("roles", {}).get("value") or {}).items():
        if value == role_id:
            return f'"{key}"'
    return "\x00"
