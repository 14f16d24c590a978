"""A paho-mqtt 2 client set up the way every dashdesk part needs it.

Pitfalls handled here once: paho leaves Nagle's algorithm on (a QoS 1 round
trip then takes 20-45 ms instead of 0.5 ms), and with MQTT 5 it wipes a
restarted process's broker session unless told not to.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

# A day: a bridge or device that is away longer than this has bigger problems;
# within it, the broker keeps its subscriptions and queued QoS 1 messages.
SESSION_EXPIRY_S = 86400


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    transport: str  # "tcp" or "websockets"
    tls: bool
    path: str
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> "BrokerURL":
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        scheme = parts.scheme.lower()
        if scheme not in ("mqtt", "mqtts", "ws", "wss", "tcp"):
            raise ValueError(f"unsupported broker URL scheme {scheme!r}")
        tls = scheme in ("mqtts", "wss")
        ws = scheme in ("ws", "wss")
        port = parts.port or {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ws": 80, "wss": 443}[scheme]
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            transport="websockets" if ws else "tcp",
            tls=tls,
            path=parts.path or "/mqtt",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def url_with_credentials(url: str, username: str, password: str) -> str:
    """``url`` (``mqtt://host:port``, ``ws://host:port/mqtt``...) with this username and password in it."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}{port}"
    return parts._replace(netloc=netloc).geturl()


def url_without_credentials(url: str) -> str:
    """``url`` with any username and password taken out, for logs and messages."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def set_nodelay(client: mqtt.Client) -> None:
    """Turn Nagle off on the client's socket (call from ``on_connect``)."""
    sock = client.socket()
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass  # a WebSockets wrapper or a socket already closed: nothing to tune


def make_client(url: str, client_id: str, *, protocol: int = 5, persistent: bool = True,
                manual_ack: bool = False) -> tuple[mqtt.Client, BrokerURL]:
    """Create (not connect) a client for ``url`` with a stable id and, if asked, a kept session."""
    broker = BrokerURL.parse(url)
    proto = mqtt.MQTTv5 if int(protocol) == 5 else mqtt.MQTTv311
    kwargs = {}
    if proto == mqtt.MQTTv311:
        kwargs["clean_session"] = not persistent
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=proto,
        transport=broker.transport,
        manual_ack=manual_ack,
        reconnect_on_failure=True,
        **kwargs,
    )
    if broker.transport == "websockets":
        client.ws_set_options(path=broker.path)
    if broker.tls:
        client.tls_set()
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client, broker


def connect(client: mqtt.Client, broker: BrokerURL, *, protocol: int = 5, persistent: bool = True,
            keepalive: int = 30, receive_maximum: int | None = None) -> None:
    """Start an asynchronous connect that keeps (or not) the session across restarts."""
    if int(protocol) == 5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S if persistent else 0
        if receive_maximum:
            props.ReceiveMaximum = receive_maximum
        client.connect_async(broker.host, broker.port, keepalive=keepalive,
                             clean_start=not persistent, properties=props)
    else:
        client.connect_async(broker.host, broker.port, keepalive=keepalive)
