"""Adapters: the only modules that import msal, httpx and the azure.* SDKs. Import the submodule you need."""
