"""The service-desk core (DESK-3..9): tickets, workflow, SLA, comments, files, history, lists."""
