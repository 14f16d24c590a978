"""Run a device from its TOML: the agent, plus presses typed on stdin and acks printed."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping, TextIO

from dashdesk import wire
from device.agent import DeviceAgent
from device.config import DeviceConfig, load_device_config

log = logging.getLogger(__name__)

USAGE = "type a button and optionally a press type, e.g. 'b1', 'b1 long', 'b2 double'; Ctrl+C quits"


def parse_command(line: str, config: DeviceConfig) -> tuple[str, str] | None:
    """Read ``BUTTON [single|double|long]``; None for a blank line, ValueError for a bad one."""
    words = line.split()
    if not words:
        return None
    if len(words) > 2:
        raise ValueError(f"expected 'BUTTON [PRESS]', got {line.strip()!r}")
    button, press = words[0], words[1] if len(words) == 2 else "single"
    names = [b.name for b in config.buttons]
    if button not in names:
        raise ValueError(f"no button {button!r}; this device has {', '.join(names)}")
    if press not in wire.PRESS_TYPES:
        raise ValueError(f"press must be one of {', '.join(wire.PRESS_TYPES)}, not {press!r}")
    return button, press


def _is_keyboard_or_pipe(stream: TextIO | None) -> bool:
    try:
        mode = os.fstat(stream.fileno()).st_mode  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return False  # no stdin, or one without a file descriptor
    return stream.isatty() or stat.S_ISFIFO(mode)  # type: ignore[union-attr]


def _read_commands(agent: DeviceAgent, lines: Iterable[str]) -> None:
    for line in lines:
        try:
            command = parse_command(line, agent.config)
            if command:
                agent.press(*command)
        except ValueError as exc:
            print(f"? {exc}", file=sys.stderr, flush=True)
        except Exception:  # the queue closed under us at shutdown, say
            log.exception("could not report %r", line.strip())


def _say(line: str) -> None:
    print(line, flush=True)


def run_device(config: str | Path | Mapping[str, Any], mqtt_url: str | None = None,
               read_stdin: bool = True, protocol: int | None = None) -> int:
    """Run a device agent until SIGINT or SIGTERM; return the exit status (2: bad config).

    ``protocol`` (4 or 5) overrides the file's, as ``mqtt_url`` does its broker.
    """
    try:
        cfg = load_device_config(config)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        print(f"dashdesk device: {exc}", file=sys.stderr)
        return 2
    if protocol is not None:
        cfg = dataclasses.replace(cfg, protocol=int(protocol))
    agent = DeviceAgent(cfg, mqtt_url=mqtt_url, report=_say)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    agent.start()
    try:
        if read_stdin and _is_keyboard_or_pipe(sys.stdin):
            print(USAGE, file=sys.stderr, flush=True)
            threading.Thread(target=_read_commands, args=(agent, sys.stdin),
                             name="dashdesk-stdin", daemon=True).start()
        # An end of stdin does not stop the device: under a service manager
        # stdin is empty, and a pipe's presses still await their acks.
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0
