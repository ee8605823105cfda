"""Authentication and authorisation: passwords, signed tokens, API keys, principals and guards."""
