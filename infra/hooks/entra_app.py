"""azd hooks for the Entra app registration (azure.yaml runs this before and after provisioning).

    preprovision   find or create the multi-tenant app registration "interview-calendar-<env>" with the
                   permissions the code asks for; set ENTRA_CLIENT_ID in the azd environment (a template
                   parameter, so CLIENT_ID is set by the templates)
    postprovision  set its redirect URIs from PUBLIC_BASE_URL (a template output); write its client secret
                   and the token-encryption key to Key Vault when they are missing (--rotate-client-secret
                   adds a new one); restart the app so its Key Vault references resolve

The Microsoft Graph Bicep extension can create the application but not its client secret (password
credentials are not writable through it), and the redirect URIs need the app's URL, known only after
provisioning: so the registration is made here, with the azd sign-in (AzureDeveloperCliCredential),
through Graph's REST API. Secrets go straight to Key Vault: never to stdout, a setting or azd's .env.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared.config import REQUIRED_APP_ROLES, Settings  # noqa: E402
from shared.identity.signin import BASE_SCOPES, FEATURE_SCOPES  # noqa: E402
from shared.urls import consent_callback_url, signin_callback_url  # noqa: E402

GRAPH = "https://graph.microsoft.com/v1.0"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's well-known application id
OIDC_SCOPES = ("openid", "profile", "offline_access", "email")
SECRET_LIFETIME = timedelta(days=180)


def delegated_scopes() -> list[str]:
    """Every delegated permission the app asks for: base, OpenID Connect, and the opt-in features'."""
    names = [*BASE_SCOPES, *OIDC_SCOPES]
    for extra in FEATURE_SCOPES.values():
        names += extra
    return sorted(set(names))


def required_resource_access(graph_service_principal: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Graph's ``requiredResourceAccess`` entry, with ids looked up by name on Graph's service principal
    (so no permission id is copied into this project)."""
    roles = {r["value"]: r["id"] for r in graph_service_principal.get("appRoles", [])}
    scopes = {s["value"]: s["id"] for s in graph_service_principal.get("oauth2PermissionScopes", [])}
    missing = [n for n in REQUIRED_APP_ROLES if n not in roles] + [n for n in delegated_scopes() if n not in scopes]
    if missing:
        raise SystemExit(f"Microsoft Graph does not list these permissions: {', '.join(missing)}")
    access = [{"id": roles[n], "type": "Role"} for n in REQUIRED_APP_ROLES]
    access += [{"id": scopes[n], "type": "Scope"} for n in delegated_scopes()]
    return [{"resourceAppId": GRAPH_APP_ID, "resourceAccess": access}]


def application_body(display_name: str, graph_service_principal: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "displayName": display_name,
        "signInAudience": "AzureADMultipleOrgs",
        # ID tokens carry wids, so tenant admins may change their tenant's settings (README).
        "groupMembershipClaims": "DirectoryRole",
        "requiredResourceAccess": required_resource_access(graph_service_principal),
    }


def redirect_uris(public_base_url: str) -> list[str]:
    settings = Settings(public_base_url=public_base_url.rstrip("/"))
    return [signin_callback_url(settings), consent_callback_url(settings)]


# ------------------------------------------------------------------------------------- side effects


def _credential() -> Any:
    from azure.identity import AzureDeveloperCliCredential

    return AzureDeveloperCliCredential(tenant_id=os.environ.get("AZURE_TENANT_ID") or None)


def _graph(credential: Any) -> Any:
    import httpx

    token = credential.get_token("https://graph.microsoft.com/.default").token
    return httpx.Client(base_url=GRAPH, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SystemExit(f"{name} is not set in the azd environment (run through `azd up` or `azd provision`).")
    return value


def _azd_env_set(name: str, value: str) -> None:
    subprocess.run(["azd", "env", "set", name, value], check=True)  # noqa: S603, S607 - azd runs this hook


def _find_application(graph: Any, display_name: str) -> dict[str, Any] | None:
    found = graph.get("/applications", params={"$filter": f"displayName eq '{display_name}'"})
    found.raise_for_status()
    apps: list[dict[str, Any]] = found.json().get("value", [])
    return apps[0] if apps else None


def preprovision() -> None:
    display_name = f"interview-calendar-{_env('AZURE_ENV_NAME')}"
    with _graph(_credential()) as graph:
        sp = graph.get(f"/servicePrincipals(appId='{GRAPH_APP_ID}')")
        sp.raise_for_status()
        body = application_body(display_name, sp.json())
        app = _find_application(graph, display_name)
        if app is None:
            created = graph.post("/applications", json=body)
            created.raise_for_status()
            app = created.json()
            print(f"Created the app registration {display_name} ({app['appId']}).")
        else:
            graph.patch(f"/applications/{app['id']}", json=body).raise_for_status()
            print(f"Updated the app registration {display_name} ({app['appId']}).")
    _azd_env_set("ENTRA_CLIENT_ID", app["appId"])


def _missing_secret(client: Any, name: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.get_secret(name)
    except ResourceNotFoundError:
        return True
    return False


def postprovision(rotate: bool) -> None:
    from azure.keyvault.secrets import SecretClient

    credential = _credential()
    client_id = _env("ENTRA_CLIENT_ID")
    uris = redirect_uris(_env("PUBLIC_BASE_URL"))
    vault = SecretClient(vault_url=_env("AZURE_KEY_VAULT_URL"), credential=credential)
    with _graph(credential) as graph:
        found = graph.get(f"/applications(appId='{client_id}')")
        found.raise_for_status()
        app = found.json()
        graph.patch(f"/applications/{app['id']}", json={"web": {"redirectUris": uris}}).raise_for_status()
        print(f"Redirect URIs: {', '.join(uris)}")
        secret_name = _env("CLIENT_SECRET_NAME")
        if rotate or _missing_secret(vault, secret_name):
            end = (datetime.now(UTC) + SECRET_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")
            added = graph.post(
                f"/applications/{app['id']}/addPassword",
                json={"passwordCredential": {"displayName": "azd", "endDateTime": end}},
            )
            added.raise_for_status()
            vault.set_secret(secret_name, added.json()["secretText"], expires_on=datetime.now(UTC) + SECRET_LIFETIME)
            print(f"A new client secret is in Key Vault as {secret_name} (expires {end}).")
    key_name = _env("TOKEN_KEY_SECRET_NAME")
    if _missing_secret(vault, key_name):
        vault.set_secret(key_name, base64.b64encode(secrets.token_bytes(32)).decode("ascii"))
        print(f"A token-encryption key is in Key Vault as {key_name}.")
    _restart(credential)


def _restart(credential: Any) -> None:
    """Restart the app so its Key Vault references are read again (they are cached for up to a day)."""
    import httpx

    token = credential.get_token("https://management.azure.com/.default").token
    path = (
        f"https://management.azure.com/subscriptions/{_env('AZURE_SUBSCRIPTION_ID')}/resourceGroups/"
        f"{_env('AZURE_RESOURCE_GROUP')}/providers/Microsoft.Web/sites/{_env('AZURE_FUNCTION_APP_NAME')}"
        "/restart?api-version=2024-04-01"
    )
    httpx.post(path, headers={"Authorization": f"Bearer {token}"}, timeout=60).raise_for_status()
    print("Restarted the Function App.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("preprovision", "postprovision"))
    parser.add_argument("--rotate-client-secret", action="store_true")
    args = parser.parse_args(argv)
    if args.step == "preprovision":
        preprovision()
    else:
        postprovision(args.rotate_client_secret)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
