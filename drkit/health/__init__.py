"""``drkit doctor``: a check of every dependency with its fix, and the least-privilege policy.

Health looks at everything, so it may import any layer below the CLI (runbooks for the
schedules, the adapters for each service); nothing but :mod:`drkit.cli` imports it.
"""
