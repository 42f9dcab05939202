"""The app's Azure credential: the managed identity that the deployment gives the Function App.

Built once per worker from the same settings the Functions host uses for identity-based storage
(``AzureWebJobsStorage__credential`` and ``__clientId``), so the code's own table, queue and Key Vault
clients act as the same user-assigned identity as the host. azure-identity is imported here, on first
use, never at import time (cold start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.config import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def build_credential(settings: Settings) -> TokenCredential:
    """``ManagedIdentityCredential`` when ``AzureWebJobsStorage__credential`` is ``managedidentity`` (as in
    Azure), else ``DefaultAzureCredential`` (a developer's sign-in locally); with the client id when one is
    given, since a user-assigned identity must be named."""
    client_id = settings.storage_client_id
    if (settings.storage_credential or "").lower() == "managedidentity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    from azure.identity import DefaultAzureCredential

    if client_id:
        return DefaultAzureCredential(managed_identity_client_id=client_id)
    return DefaultAzureCredential()
