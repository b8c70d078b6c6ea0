"""corral's benchmarks: corral side by side with named peers, one module per workload.

Run them with ``corral bench`` (a rich table) or ``python -m benchmarks`` (plain text);
``--smoke`` runs every case once at a tiny size, to check that they all still work.
"""
