"""The ``drkit`` command line: one module per command group, each a thin wrapper that parses
arguments, calls the library and prints. ``main`` turns errors into exit codes.

The CLI may import every layer; nothing in drkit imports it.
"""
