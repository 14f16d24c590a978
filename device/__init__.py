"""The dashdesk device agent: a Raspberry Pi's buttons and LEDs reporting presses over MQTT."""

from device.agent import DeviceAgent
from device.config import DeviceConfig, load_device_config
from device.run import run_device

__all__ = ["DeviceAgent", "DeviceConfig", "load_device_config", "run_device"]
