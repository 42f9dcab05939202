"""Identity: who may act. Admin consent, recruiter sign-in and its browser flows, token acquisition and
renewal, the two-token guard (a session AND the tenant's consent), readiness and tenant settings, directory reads.
"""
