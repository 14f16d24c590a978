"""Rules and actions of the ticket server, without Flask: what the API, the pages and the command line call.

- ``incidents``: the press transaction (dedup, reopen, cancel), ``rules``: its pure arithmetic (priority, SLA
  deadlines, scopes), ``tickets``: what people do to a ticket, ``events``: every event kind, declared once.
- ``devices``, ``device_actions`` (approve, register, replace, retire with the broker account), ``sites``,
  ``categories``, ``enrolments`` (phones), ``config_io`` (the configuration as TOML).
- ``broker_accounts`` (what actions do to a device's account), ``broker_store`` (the interface a broker
  implements), ``mosquitto`` (Mosquitto's dynamic security, its first adapter).
- ``users``, ``tokens``, ``web_sessions``, ``audit``; ``inputs`` (text and numbers from outside), ``errors``
  (``NotFound``), ``demo`` (the demo shop).
"""
