"""Runbooks: their definitions (``definitions/*.yaml``) and notebooks (``notebooks/*.ipynb``),
shipped as package data; the papermill runner, audit records, cron schedule, the helpers the
notebooks call, and the HTML report with its charts.

It may import the operations and everything below them, never :mod:`drkit.health`,
:mod:`drkit.sandbox` or :mod:`drkit.cli`.
"""
