"""The controller's reporter: records reach the bundle as items finish; at the end the cross-backend diffs, the
summaries and the report-level Allure files."""

from __future__ import annotations

import json
import time

import pytest

from harness.engine.run import CROSS_BACKEND, Record
from harness.items import RECORD_KEY, RunState, _stable, alluredir, identify

DISK_CHECK_INTERVAL_S = 0.05  # free space is checked before an item at most this often


class BundleReporter:
    """On the controller: records reach the bundle as reports arrive; after the last item the cross-backend diffs
    are made from the stored outputs, the bundle is completed, the summaries written, and the Allure results get
    their report-level files."""

    def __init__(self, state: RunState, config: pytest.Config):
        self.state = state
        self.writer = state.writer
        self.config = config
        self.cross: list[dict] = []
        self.session: pytest.Session | None = None
        self.stopping: str | None = None
        self._disk_checked = float("-inf")  # time.monotonic() of the last free-space check

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_runtest_logstart(self, nodeid: str, location) -> None:
        self.writer.started(_stable(nodeid))
        self._watch_disk()

    def _watch_disk(self) -> None:
        """Stop the run before the disk is full (a full disk breaks every writer, Allure's too): the bundle is kept,
        marked partial, and says why."""
        from harness.results.budget import low_on_disk

        now = time.monotonic()
        if not self.writer.disk_full and now - self._disk_checked < DISK_CHECK_INTERVAL_S:
            return  # statvfs took 0.18 ms: a tenth of a small item's time; an item writing much takes longer
        self._disk_checked = now
        problem = self.writer.disk_full or low_on_disk(self.state.out_dir)
        if problem and not self.stopping:
            self.stopping = problem
            self.writer.disk_full = problem
            self.session.shouldstop = problem
            dsession = self.config.pluginmanager.getplugin("dsession")  # pytest-xdist's controller
            if dsession is not None:
                dsession.shouldstop = problem

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and not report.failed:
            return  # the record came with the call's report (pytest_runtest_makereport keeps it off this one)
        texts = [v for k, v in report.user_properties if k == RECORD_KEY]
        if report.when == "call":
            for text in texts:
                self.writer.add(json.loads(text), text)
        if report.failed and not texts and report.when != "teardown":  # xdist reports a crash with when="???"
            # No record: the item died before writing one (an xdist worker crash, a setup error).
            nodeid = _stable(report.nodeid)
            case_id, backend = identify(nodeid, self.config.rootpath, self.state)
            self.writer.add(Record.crash(nodeid, case_id, backend, str(report.longrepr)).as_dict())
            if alluredir(self.config) and getattr(report, "node", None) is not None:
                from harness.report import (
                    allure as report_mod,
                )  # an xdist worker died: allure-pytest wrote nothing for it

                report_mod.write_crash_result(alluredir(self.config), report.nodeid, str(report.longrepr))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.state.drain_allure_writes()  # what follows reads the Allure results folder
        complete = (
            exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
            and not session.shouldstop
            and not self.writer.disk_full
        )
        if complete and len(self.state.backends) >= 2:
            from harness.engine.crossdiff import stored_cross_backend

            on_record = None
            if alluredir(self.config):
                from harness.report.allure import write_cross_backend_result

                def on_record(case, record, outcomes, verdict):
                    write_cross_backend_result(alluredir(self.config), case, record, outcomes, verdict)

            self.cross = stored_cross_backend(
                self.writer.doc["records"],
                self.writer.doc.get("_sources", {}),
                self.state.out_dir,
                self.state.backends,
                self.state.parse_cache,
                on_record,
            )
            for record in self.cross:
                self.writer.add(record)
            if any(r["status"] in ("fail", "error") for r in self.cross) and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.writer.finish(int(session.exitstatus), complete)
        if self.writer.disk_full:
            session.config.get_terminal_writer().line(
                f"qdq: {self.writer.disk_full}; the run stopped, what was written is kept, the bundle is partial",
                red=True,
            )
            return
        if not self.config.getoption("--qdq-report-later"):
            from harness.report.html import write_run_reports

            write_run_reports(self.writer.out_dir, self.writer.doc, alluredir(self.config), self.state.root)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.cross:
            return
        failing = [r for r in self.cross if r["status"] in ("fail", "error")]
        counts = {s: sum(1 for r in self.cross if r["status"] == s) for s in ("pass", "fail", "error", "skip")}
        terminalreporter.section(f"{CROSS_BACKEND} (from the stored outputs)")
        terminalreporter.line(", ".join(f"{n} {s}" for s, n in counts.items() if n))
        for r in failing:
            terminalreporter.line(f"FAILED {r['nodeid']} - {r['reason'][:500]}")
