"""Sizing: answers computed before (or from) a load test, with no broker and no worker.

``recommend`` (concurrency from resources, photo counts, topologies, workers for a backlog),
``assess`` (observed figures graded against the thresholds profile), ``cost`` (monthly cost per
instance), ``queueing`` (Erlang C), ``simulate`` (a discrete-event FCFS pool) and ``usl`` (the
Universal Scalability Law fit). Pure functions over profiles and numbers.
"""
