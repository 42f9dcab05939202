"""Booking: interviews created, moved and cancelled exactly once, only our own events, the rule for whose
permission writes, slot claims, recovery of what a dead request left pending, and what Outlook did to our events.
"""
