"""What the desk, the admin pages and the phone app share: ``session`` (sign-in, CSRF, limits, guards, headers),
``formatting`` (times, durations, SLA, readings, audit details), ``errors`` (the HTML error page), ``security``
(security headers and cookies)."""
