"""Outbound connectors: one module per far side (PBX, providers, notification channels)."""
