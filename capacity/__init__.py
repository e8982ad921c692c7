"""capacity: capacity planning for background-job workers (Celery on SQS or Redis)."""

__version__ = "0.1.0"
