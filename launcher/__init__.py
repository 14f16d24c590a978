"""The composition root: the ``dashdesk`` command, ``up``'s supervisor and the broker ``up`` starts.

The only code that imports the parts (device, broker_bridge, server).
"""
