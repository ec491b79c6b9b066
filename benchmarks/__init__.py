"""Benchmarks: scripts that print speed and memory figures. Run as `python -m benchmarks.NAME`."""
