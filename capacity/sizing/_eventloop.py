"""The fleet simulation's inner loop, compiled with numba: tasks of several classes (queues) served
by pools of replicas, each pool taking from its queues in priority order, FCFS within a queue.

Written by hand because no maintained library runs this model at this speed: ciw and SimPy
simulate queueing networks event by event in Python (a few µs per event at best, so a day at
1,000 tasks/s, 86 million tasks, would take hours), and neither models replicas that join, drain
and leave on a controller's command. The controller (the HPA, KEDA, AWS) runs in Python between
calls (``capacity.sizing.autoscale``); this loop only moves tasks between a fixed set of replicas
from one of the controller's decisions to the next.

State lives in numpy arrays owned by the caller and is updated in place:

* tasks (sorted by arrival): ``arrivals``, ``services``, ``klass``; ``starts`` is written;
* per class ``q``: its tasks in order are ``class_tasks[class_off[q]:class_off[q + 1]]``; ``head[q]``
  of them have started, ``tail[q]`` have arrived; ``class_busy[q]`` are running;
* per pool ``p``: its queues in priority order ``pool_queues[pool_qoff[p]:pool_qoff[p + 1]]``; the
  pools consuming class ``q`` are ``class_pools[class_poff[q]:class_poff[q + 1]]``; a stack of
  replicas with a free slot, one entry per free slot: ``free_stack[free_off[p]:][:free_n[p]]``;
* per replica ``r``: ``rep_pool``, ``rep_busy`` (running tasks), ``rep_accept`` (ready and not
  being removed), ``rep_last`` (its last completion);
* completions: a binary heap of (time, replica, class) in ``heap_t``, ``heap_r``, ``heap_c`` with
  ``counters[HEAP]`` entries; ``pool_work[p]``: the service seconds pool ``p`` has taken on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numba
import numpy as np

# indices into the counters array
NEXT_ARRIVAL, HEAP, FINISHED = 0, 1, 2


def _push_py(heap_t: Any, heap_r: Any, heap_c: Any, size: int, t: float, r: int, c: int) -> int:
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if heap_t[parent] <= t:
            break
        heap_t[i], heap_r[i], heap_c[i] = heap_t[parent], heap_r[parent], heap_c[parent]
        i = parent
    heap_t[i], heap_r[i], heap_c[i] = t, r, c
    return size + 1


def _pop_py(heap_t: Any, heap_r: Any, heap_c: Any, size: int) -> int:
    """Remove the root; the new size."""
    size -= 1
    t, r, c = heap_t[size], heap_r[size], heap_c[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap_t[child + 1] < heap_t[child]:
            child += 1
        if heap_t[child] >= t:
            break
        heap_t[i], heap_r[i], heap_c[i] = heap_t[child], heap_r[child], heap_c[child]
        i = child
    if size > 0:
        heap_t[i], heap_r[i], heap_c[i] = t, r, c
    return size


def _dispatch_py(
    p: int,
    now: float,
    services: Any,
    starts: Any,
    class_tasks: Any,
    class_off: Any,
    head: Any,
    tail: Any,
    class_busy: Any,
    pool_queues: Any,
    pool_qoff: Any,
    free_stack: Any,
    free_off: Any,
    free_n: Any,
    rep_busy: Any,
    pool_work: Any,
    heap_t: Any,
    heap_r: Any,
    heap_c: Any,
    size: int,
) -> int:
    """Pool ``p``'s free slots take waiting tasks, its queues in priority order; the heap's size."""
    while free_n[p] > 0:
        q = -1
        for k in range(pool_qoff[p], pool_qoff[p + 1]):
            if head[pool_queues[k]] < tail[pool_queues[k]]:
                q = pool_queues[k]
                break
        if q < 0:
            return size
        free_n[p] -= 1
        r = free_stack[free_off[p] + free_n[p]]
        j = class_tasks[class_off[q] + head[q]]
        head[q] += 1
        starts[j] = now
        rep_busy[r] += 1
        class_busy[q] += 1
        pool_work[p] += services[j]
        size = _push(heap_t, heap_r, heap_c, size, now + services[j], r, q)
    return size


def _advance_py(
    t0: float,
    t_end: float,
    arrivals: Any,
    services: Any,
    klass: Any,
    starts: Any,
    class_tasks: Any,
    class_off: Any,
    head: Any,
    tail: Any,
    class_busy: Any,
    pool_queues: Any,
    pool_qoff: Any,
    class_pools: Any,
    class_poff: Any,
    free_stack: Any,
    free_off: Any,
    free_n: Any,
    rep_pool: Any,
    rep_busy: Any,
    rep_accept: Any,
    rep_last: Any,
    pool_work: Any,
    heap_t: Any,
    heap_r: Any,
    heap_c: Any,
    counters: Any,
) -> None:
    """Serve from ``t0`` (the free slots first take what waits) through ``t_end`` inclusive: at
    equal times completions come before arrivals, as a worker frees its slot before the next
    message is read."""
    n = len(arrivals)
    size = counters[HEAP]
    for p in range(len(pool_qoff) - 1):
        size = _dispatch(
            p, t0, services, starts, class_tasks, class_off, head, tail, class_busy, pool_queues, pool_qoff,
            free_stack, free_off, free_n, rep_busy, pool_work, heap_t, heap_r, heap_c, size,
        )  # fmt: skip
    i = counters[NEXT_ARRIVAL]
    finished = counters[FINISHED]
    while True:
        ta = arrivals[i] if i < n else np.inf
        tc = heap_t[0] if size > 0 else np.inf
        if tc <= ta:
            if tc > t_end:
                break
            r, q = heap_r[0], heap_c[0]
            size = _pop(heap_t, heap_r, heap_c, size)
            rep_busy[r] -= 1
            rep_last[r] = tc
            class_busy[q] -= 1
            finished += 1
            if rep_accept[r]:
                p = rep_pool[r]
                free_stack[free_off[p] + free_n[p]] = r
                free_n[p] += 1
                size = _dispatch(
                    p, tc, services, starts, class_tasks, class_off, head, tail, class_busy, pool_queues,
                    pool_qoff, free_stack, free_off, free_n, rep_busy, pool_work, heap_t, heap_r, heap_c, size,
                )  # fmt: skip
        else:
            if ta > t_end:
                break
            q = klass[i]
            tail[q] += 1
            i += 1
            for k in range(class_poff[q], class_poff[q + 1]):
                p = class_pools[k]
                if free_n[p] > 0:
                    size = _dispatch(
                        p, ta, services, starts, class_tasks, class_off, head, tail, class_busy, pool_queues,
                        pool_qoff, free_stack, free_off, free_n, rep_busy, pool_work, heap_t, heap_r, heap_c, size,
                    )  # fmt: skip
                    break
    counters[NEXT_ARRIVAL] = i
    counters[HEAP] = size
    counters[FINISHED] = finished


# compiled in dependency order: the bodies above call the compiled _push, _pop and _dispatch
_jit: Any = numba.njit(cache=True, nogil=True)
_push = _jit(_push_py)
_pop = _jit(_pop_py)
_dispatch = _jit(_dispatch_py)
#: the compiled loop (numba's decorator is untyped, hence the cast)
advance = cast(Callable[..., None], _jit(_advance_py))


def new_counters() -> np.ndarray:
    return np.zeros(3, dtype=np.int64)
