"""Candidate email: templates (sandboxed, checked when saved), sending from the recruiter's mailbox exactly once
(a message key in an extended property, looked up in Sent Items before any retry after an unknown outcome),
pacing under Exchange's limits, the booking triggers and the reminder timer, and the trail of sent mail and
replies.
"""
