"""The shared core every part uses and none owns: ``wire`` (topics, press, ack, telemetry, the incident body),
``mqtt`` (broker URLs, clients), ``config`` (the TOML file and its environment variables), ``datalock`` (one
process per data directory), ``commands`` (what every part's commands share), ``press_client`` (publish a press,
wait for its ack). It imports no part (pyproject.toml, ``[tool.importlinter]``)."""
