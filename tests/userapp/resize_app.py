"""A user's Celery app, shaped like a public Flask + Celery image-resize app (issue #12): its own
task names, positional arguments, strict signatures, a temporary file named after the first
argument. It imports nothing from capacity: the probe comes in with ``--include capacity.probe``
(or the module ``capacity probe write`` makes)."""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("resize_app", broker=os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0"))
app.conf.update(broker_transport_options={"polling_interval": 0.1, "wait_time_seconds": 1})


@app.task(name="resize.async_resize")
def async_resize(file_uuid: str, img_string: str) -> str:
    """Writes its output next to the others, named by ``file_uuid``: two tasks given the same id
    collide (O_EXCL), as the app's temp files raced when every task had the same arguments."""
    out = os.path.join(os.environ["RESIZE_OUT"], f"{file_uuid}.txt")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, img_string.encode())
    finally:
        os.close(fd)
    time.sleep(0.05)
    return out


@app.task(name="resize.make_thumbnail")
def make_thumbnail(*, image_id: str, width: int) -> str:
    """Keyword-only, as the app's thumbnail task: one file per image id, its width inside."""
    out = os.path.join(os.environ["RESIZE_OUT"], f"thumb-{image_id}.txt")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, str(width).encode())
    finally:
        os.close(fd)
    time.sleep(0.02)
    return out
