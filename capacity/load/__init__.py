"""Load: putting real tasks on a broker on a schedule, and watching the queue while it happens.

``schedules`` (pure load shapes: burst, sustained, ramp, stages), ``runner`` (drives a schedule
with an injectable clock), ``payload``
(placeholders and synthetic payload files), ``inject`` (the sending loop), ``tasklog`` (the
crash-safe task log: written and read here) and ``monitor`` (queue-depth samples and their CSV).
"""
