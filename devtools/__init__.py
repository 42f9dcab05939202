"""Tools for running and testing the service locally. Never deployed (see .funcignore)."""
