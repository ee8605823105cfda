"""Inbound webhooks that authenticate themselves (provider signatures), outside the auth middleware."""
