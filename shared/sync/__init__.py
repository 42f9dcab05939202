"""Sync: what Outlook tells us. Webhook intake of change and lifecycle notifications, the notification
worker, and the subscriptions that feed them (create, renew, heal, reconcile).
"""
