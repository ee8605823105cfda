"""The client's side of a ticket's conversation in the client app (DESK-11)."""
