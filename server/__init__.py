"""The ticket server: ``app.create_app`` builds it, ``serve`` runs it, ``cli`` holds its commands. Its layers, top
to bottom: ``api``, ``desk``, ``admin``, ``phone``; ``pages``; ``context`` and ``errors``; ``domain``; the data
(``models``, ``db``, ``migrate``, ``prepared``, ``migrations``). docs/layout.md has the map."""
