"""A local Microsoft cloud: Entra ID (identity platform v2) and Microsoft Graph v1.0, as documented."""
