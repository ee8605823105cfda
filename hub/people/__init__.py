"""People and places (DESK-2): client companies, contacts, service objects and object users."""
