"""An HTML page as a PDF (WeasyPrint), here or in a background process.

The report step writes its PDF and its workbook from the same figures; both are pure Python work
(WeasyPrint's layout, xlsxwriter's cells) that one process does one after the other. A big report
therefore lays its PDF out in a second process while the workbook is written (`PdfJob`): on a
machine with two cores the step takes the longer of the two instead of their sum (at 1M invoices
the PDF is ~3.5 s beside a ~12 s workbook). The worker is spawned (not forked: the parent holds
DuckDB's threads) and imports this module and WeasyPrint only. A small report stays in-process:
starting a worker costs about a second.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path


def write_pdf(page: str, path: str | Path, base_url: str | Path) -> None:
    """The HTML page as a PDF file (WeasyPrint, imported here: it takes a second to load)."""
    from weasyprint import HTML

    HTML(string=page, base_url=str(base_url)).write_pdf(str(path))


class PdfJob:
    """write_pdf() started now, in a background process when `background`, else right away;
    wait() returns once the file is written (and raises what the rendering raised). A worker that
    could not start or died (BrokenProcessPool) is no reason to fail the report: the PDF is then
    laid out in this process."""

    def __init__(self, page: str, path: str | Path, base_url: str | Path, background: bool) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._future: Future | None = None
        self._args = (page, path, base_url)
        if not background:
            write_pdf(page, path, base_url)
            return
        self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._future = self._executor.submit(write_pdf, page, str(path), str(base_url))

    def wait(self) -> None:
        if self._future is None:
            return
        try:
            self._future.result()
        except BrokenProcessPool:
            write_pdf(*self._args)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker (a job not waited for is cancelled when it has not started)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor, self._future = None, None

    def __enter__(self) -> PdfJob:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
