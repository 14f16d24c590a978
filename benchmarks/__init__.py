"""Benchmarks of the press → ack pipe on real Mosquitto, server and bridge (see README.md)."""
