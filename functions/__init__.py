"""Trigger adapters: parse the trigger, call one core function, map the result."""
