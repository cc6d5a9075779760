"""The local DR estate for tests, demos and benchmarks: two MariaDB servers, Azurite and moto
on loopback, and the demo database. Needs the ``sandbox`` extra (``pip install
'drkit[sandbox]'``).

It may import drkit's top-level modules, the stream stages and the adapters (to seed what it
starts); nothing in drkit but :mod:`drkit.cli` imports it.
"""
