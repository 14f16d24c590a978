"""Rules and actions of the ticket server, without Flask: what the API and the pages call."""
