"""Layer 5, the `qdq` command (main parses and dispatches; run, cases and bundles hold the commands; matrix runs one
environment per version). Beside it at the top: the pytest plugin (pytest_plugin, items, reporter)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # nothing failed; a case failed or errored; a usage error
