"""Use cases: core rules plus storage (issue token, authenticate, rotate, revoke, apply)."""
