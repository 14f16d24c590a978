"""The dashdesk device agent: a Raspberry Pi's buttons and LEDs reporting presses over MQTT.

``run.run_device`` runs it (``dashdesk device``), ``agent.DeviceAgent`` is the MQTT side, ``buttons`` and ``leds``
the pins (gpiozero), ``queue`` the presses kept until their ack, ``telemetry`` and ``probes`` the health it reports,
``config`` its file. Nothing is imported here: ``dashdesk`` loads ``device.cli`` for its commands on every
machine, and a server need not have gpiozero.
"""
