"""The timings probe under its stable name: ``celery ... worker --include capacity.probe``."""

from capacity.workerside.probe import ENV_VAR, STREAM

__all__ = ["ENV_VAR", "STREAM"]
