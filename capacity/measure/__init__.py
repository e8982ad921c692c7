"""Measure: figures from what was measured. Task logs joined with worker timings give X, S, W, R.

``metrics`` (the figures and ``--fail-if`` gates), ``store`` (the one DuckDB query over the
inputs), ``collect`` (recording Celery events to a file) and ``sources/`` (one module per timings
source, found by one registry).
"""
