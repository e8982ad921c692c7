"""Matrix: the seed's test matrix run cell by cell against a real worker, and its analysis.

``spec`` (the matrix file), ``run`` (the cell loop), ``processes`` (starting and stopping worker
processes, the events collector), ``sampler`` (psutil resource samples, bottleneck notes),
``results`` (a cell's typed result and the run directory's files), ``analysis`` (USL fit,
recommended concurrency, model vs measured), ``plots`` (matplotlib figures) and ``embedded`` (the
embedded redis-server behind ``capacity bench``).
"""
