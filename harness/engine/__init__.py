"""Layer 3, engine: the backend interface (backend), the one run path (run: where a backend runs; execute,
isolation, worker, watchdog), verdicts (verdict: where a verdict is made; crossdiff across backends, compare for
arrays), skip kinds, valid twins and the run configuration with the families' options. Names no backend."""
