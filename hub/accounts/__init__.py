"""Accounts (tenants), employees, app users and integration API keys."""
