"""Worker side: code that runs inside a Celery worker, so it imports Celery and the standard
library only (no numpy, DuckDB, matplotlib): ``probe`` (timings per task) and ``reference`` (the
reference Celery app with synthetic tasks). Users load them by their stable names,
``--include capacity.probe`` and ``celery -A capacity.worker``.
"""
