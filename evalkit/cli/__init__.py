"""Command-line interface: one module per command, each calling the Python API only."""
