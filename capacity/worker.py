"""The reference Celery app under its stable name: ``celery -A capacity.worker worker``."""

from capacity.workerside.reference import app, job_plan, process_file

__all__ = ["app", "job_plan", "process_file"]
