"""Core of the interview calendar service: settings, models, ports, services and adapters."""
