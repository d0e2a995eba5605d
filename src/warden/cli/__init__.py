"""Command line: argument parsing and output only; each command calls a service."""
