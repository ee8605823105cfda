"""The hub's web app for employees: server-rendered pages over the same services as the API."""
