"""allure-pytest's result files written by a background thread instead of the test loop.

allure-pytest creates one file per result, in the loop. Creating a file took 0.43 ms on the 2-core VM of the
benchmarks (ext4), more than a third of a numpy item's own time. Here the result is still serialised in the loop
(it is not touched again, and the C JSON encoder is quick); only the file's creation moves to one writer thread,
which overlaps it with the next items. `drain()` waits for every queued file: it runs before anything reads the
folder (the run-level files, the declared-deviation marks) and before an xdist worker reports that it finished.

What a crash costs: a process killed mid-run loses the files still queued (at most QUEUE_LIMIT, usually none);
the bundle, which the verdicts, the summary and `qdq compare` read, is written in the loop as before.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import uuid

QUEUE_LIMIT = 64  # results waiting to be written: bounds memory and what a crash can lose


class BackgroundWrites:
    """Takes over one allure_commons AllureFileLogger's file writes (its `_report_item`)."""

    def __init__(self, logger) -> None:
        self.logger = logger
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_LIMIT)
        self.failure: OSError | None = None
        self.thread = threading.Thread(target=self._write_queued, name="allure-results-writer", daemon=True)
        self.thread.start()
        logger._report_item = self.report_item  # the instance attribute shadows the method its hooks call

    def report_item(self, item) -> None:
        from attr import asdict  # allure_commons's own dependency, as its logger uses it

        indent = 4 if os.environ.get("ALLURE_INDENT_OUTPUT") else None  # the logger's own switch
        data = asdict(item, filter=lambda _, v: v or v is False)
        text = json.dumps(data, indent=indent, ensure_ascii=False)
        self.queue.put((self.logger._report_dir / item.file_pattern.format(prefix=uuid.uuid4()), text))

    def _write_queued(self) -> None:
        while True:
            job = self.queue.get()
            try:
                if job is None:
                    return
                path, text = job
                temporary = path.with_name(path.name + ".tmp")
                temporary.write_text(text, encoding="utf-8")
                os.replace(temporary, path)  # a reader never sees half a result
            except OSError as exc:
                self.failure = self.failure or exc
            finally:
                self.queue.task_done()

    def drain(self) -> None:
        """Returns when every queued result is on disk."""
        if self.thread.is_alive():
            self.queue.join()

    def close(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


def take_over(plugin_manager) -> list[BackgroundWrites]:
    """A BackgroundWrites for each AllureFileLogger registered with allure_commons's plugin manager (one per
    `--alluredir`), when the logger has the method this replaces; else allure-pytest writes as it always did."""
    from allure_commons.logger import AllureFileLogger

    if not callable(getattr(AllureFileLogger, "_report_item", None)):
        return []
    loggers = [p for p in plugin_manager.get_plugins() if isinstance(p, AllureFileLogger)]
    return [BackgroundWrites(logger) for logger in loggers if hasattr(logger, "_report_dir")]
