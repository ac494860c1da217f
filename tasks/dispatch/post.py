"""post: letters and registered letters as PDF (WeasyPrint), one file per letter plus, per run and
post channel, one print-ready batch PDF and a manifest CSV (with a tracking-number column for
the registered-mail numbers the mail room fills in).

Speed. WeasyPrint costs ~200 ms for a one-letter document (fixed costs per write_pdf, mostly the
font subsetting) but ~35 ms a letter when many letters are laid out as one document. So letters
are rendered up to `letters.chunk_size` at a time as one HTML document (each letter starts a new
page and carries an anchor), written once, and split into per-letter files with pypdf using the
pages each anchor falls on (a letter may take several pages). Batches of `letters.parallel_from`
letters or more go to a pool of worker processes (one per CPU by default) in chunks of equal size,
a multiple of the number of workers, so that the workers finish together; workers only write
files, never DuckDB. The pool is started once per run, before the first batch that needs it; a
worker imports this module and WeasyPrint only. The cyclic garbage collector is off while a
chunk is laid out (it rescanned WeasyPrint's object graphs again and again: ~20 % of the time).
The chunk PDFs are then concatenated into the night's print batch.

Layout (templates/letters/letter.css): A4, the recipient's address in the window of a French DL
envelope (window on the right): 110 mm from the left edge, 48 mm from the top.
"""

from __future__ import annotations

import csv
import gc
import io
import multiprocessing
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
_IN_WORKER = False


def _refuse_fetch():
    """WeasyPrint may not fetch anything: letters use inline CSS and system fonts only."""
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols=("data",), fail_on_errors=False)


def document_html(css: str, sections: Iterable[str], title: str = "relance") -> str:
    from markupsafe import escape

    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{css}</style></head><body>" + "".join(sections) + "</body></html>"
    )


def render_chunk(css: str, jobs: list[tuple[str, str, str]], chunk_path: str | None) -> list[tuple[str, int, int]]:
    """Lay out the sections as one document, write it once, split it per section.

    jobs: (anchor, section html, output path). Each section's root element has id=anchor.
    Returns (anchor, first page index in the chunk, page count) per job; writes each output
    file and, if chunk_path, the whole chunk (for the print batch).
    """
    # WeasyPrint builds large object graphs; the cyclic garbage collector scanning them again and
    # again while a chunk is laid out cost ~20 % of the time. Off during the chunk (reference
    # counting still frees most of it), one collection after it in a worker.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _render_chunk(css, jobs, chunk_path)
    finally:
        if enabled:
            gc.enable()
        if _IN_WORKER:
            gc.collect()


def _render_chunk(css: str, jobs: list[tuple[str, str, str]], chunk_path: str | None) -> list[tuple[str, int, int]]:
    from pypdf import PdfReader, PdfWriter
    from weasyprint import HTML

    html = document_html(css, (section for _, section, _ in jobs))
    document = HTML(string=html, url_fetcher=_refuse_fetch()).render()
    anchors = {anchor for anchor, _, _ in jobs}
    first_page: dict[str, int] = {}
    for index, page in enumerate(document.pages):
        for anchor in page.anchors:
            if anchor in anchors and anchor not in first_page:
                first_page[anchor] = index
    missing = [a for a, _, _ in jobs if a not in first_page]
    if missing:
        raise RuntimeError(f"letters without a page: {missing[:5]}")
    pdf = document.write_pdf()
    reader = PdfReader(io.BytesIO(pdf))
    total = len(reader.pages)
    starts = sorted(first_page.values())
    out = []
    for anchor, _, path in jobs:
        start = first_page[anchor]
        later = [s for s in starts if s > start]
        end = later[0] if later else total
        writer = PdfWriter()
        for p in range(start, end):
            writer.add_page(reader.pages[p])
        target = Path(path)
        tmp = target.with_suffix(".pdf.tmp")
        with tmp.open("wb") as f:
            writer.write(f)
        tmp.replace(target)
        out.append((anchor, start, end - start))
    if chunk_path:
        Path(chunk_path).write_bytes(pdf)
    return out


def pool_size(processes: int) -> int:
    return processes or os.cpu_count() or 1


def _worker_start() -> None:
    """In each worker, once: import the PDF libraries and lay out a tiny page, so that the first
    chunk does not pay for the imports and fontconfig's font lookup."""
    global _IN_WORKER
    _IN_WORKER = True
    import pypdf  # noqa: F401
    from weasyprint import HTML

    HTML(string="<p>relance</p>", url_fetcher=_refuse_fetch()).render()
    gc.collect()
    gc.freeze()  # what the imports made lives as long as the worker: never scanned again


def _ready() -> int:
    return os.getpid()


def pool(processes: int) -> ProcessPoolExecutor:
    """Worker processes for PDF rendering, started once per process and reused by every batch.

    'spawn', not 'fork': the parent holds DuckDB's threads. A worker imports this module only
    (tasks/dispatch/__init__.py imports nothing heavy), then WeasyPrint once (_worker_start)."""
    global _POOL, _POOL_SIZE
    size = pool_size(processes)
    if _POOL is None or _POOL_SIZE != size:
        shutdown_pool()
        _POOL = ProcessPoolExecutor(
            max_workers=size, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start
        )
        _POOL_SIZE = size
        for _ in range(size):  # start every worker now (the executor spawns one per waiting task)
            _POOL.submit(_ready)
    return _POOL


def warm_pool(processes: int) -> None:
    """Start the workers ahead of the first big batch, so their start overlaps the run's preparation."""
    if pool_size(processes) > 1:
        pool(processes)


def shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None


def plan_chunks(count: int, chunk_size: int, workers: int) -> list[tuple[int, int]]:
    """(start, end) of each chunk: at most chunk_size items, and with several workers a multiple of
    their number of chunks of equal size (± 1), so that they all finish together."""
    if count <= 0:
        return []
    n = -(-count // max(1, chunk_size))
    if workers > 1:
        n = max(workers, -(-n // workers) * workers)
        n = min(n, count)
    base, extra = divmod(count, n)
    out, start = [], 0
    for i in range(n):
        end = start + base + (1 if i < extra else 0)
        out.append((start, end))
        start = end
    return out


def render_many(
    css: str,
    jobs: list[tuple[str, str, str]],
    parts_dir: Path | None,
    *,
    chunk_size: int,
    processes: int,
    parallel_from: int,
    starts: dict[str, int] | None = None,
) -> tuple[dict[str, int], list[tuple[str, list[str]]], dict[str, str]]:
    """Render many sections in chunks (in worker processes for big batches).

    Returns pages per anchor, the chunk PDFs in order with the anchors each holds (for the print
    batch) and errors per anchor: a chunk that fails is rendered again letter by letter, so one
    bad letter fails alone. `starts`, if given, receives each anchor's first page (0-based) in its
    chunk PDF.
    """
    starts = {} if starts is None else starts
    workers = pool_size(processes)
    use_pool = len(jobs) >= parallel_from and workers > 1
    chunks = [jobs[a:b] for a, b in plan_chunks(len(jobs), chunk_size, workers if use_pool else 1)]
    use_pool = use_pool and len(chunks) > 1
    if parts_dir is not None:
        parts_dir.mkdir(parents=True, exist_ok=True)
    seq = [len(list(parts_dir.glob("part-*.pdf"))) if parts_dir is not None else 0]

    def part_path() -> str | None:
        if parts_dir is None:
            return None
        seq[0] += 1
        return str(parts_dir / f"part-{seq[0]:06d}.pdf")

    paths = [part_path() for _ in chunks]
    if use_pool:
        executor = pool(processes)
        futures = [executor.submit(render_chunk, css, chunk, path) for chunk, path in zip(chunks, paths)]
        outcomes = []
        for f in futures:
            try:
                outcomes.append(f.result())
            except Exception as e:  # noqa: BLE001 - isolated below
                outcomes.append(e)
    else:
        outcomes = []
        for chunk, path in zip(chunks, paths):
            try:
                outcomes.append(render_chunk(css, chunk, path))
            except Exception as e:  # noqa: BLE001
                outcomes.append(e)
    if any(isinstance(o, BrokenProcessPool) for o in outcomes):
        shutdown_pool()  # a worker died: the next batch starts a new pool (this one's chunks go one by one below)
    pages: dict[str, int] = {}
    errors: dict[str, str] = {}
    done: list[tuple[str, list[str]]] = []
    for chunk, path, outcome in zip(chunks, paths, outcomes):
        if not isinstance(outcome, Exception):
            pages.update({anchor: count for anchor, _, count in outcome})
            starts.update({anchor: start for anchor, start, _ in outcome})
            if path:
                done.append((path, [anchor for anchor, _, _ in chunk]))
            continue
        for job in chunk:  # one by one, to fail only the letter at fault
            single = part_path()
            try:
                for anchor, start, count in render_chunk(css, [job], single):
                    pages[anchor] = count
                    starts[anchor] = start
                if single:
                    done.append((single, [job[0]]))
            except Exception as e:  # noqa: BLE001
                errors[job[0]] = f"PDF rendering failed: {type(e).__name__}: {e}"
    return pages, done, errors


def letter_css(renderer) -> str:
    return (renderer.dir / "letters" / "letter.css").read_text(encoding="utf-8")


def merge_pdfs(parts: list, target: Path) -> int:
    """Concatenate the chunk PDFs into the print batch; returns its page count. A part is a path
    (all its pages) or (path, [(first page, end page), …]) (those pages only, 0-based, end excluded)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in parts:
        if isinstance(part, tuple):
            path, ranges = part
            for start, end in ranges:
                writer.append(path, pages=(start, end))
        else:
            writer.append(part)
    tmp = target.with_suffix(".pdf.tmp")
    with tmp.open("wb") as f:
        writer.write(f)
    tmp.replace(target)
    return len(writer.pages)


MANIFEST_COLUMNS = [
    "sequence",
    "delivery_id",
    "action_id",
    "channel",
    "stage",
    "customer_id",
    "name",
    "street",
    "postal_code",
    "city",
    "country",
    "pages",
    "first_page",
    "file",
    "registered",
    "tracking_number",
]


def confirm_part(part: str, rows: list[dict]) -> None:
    """After the ledger recorded its letters as sent: the part joins the next print batch.

    A part without this sidecar belongs to letters whose record never happened (a crash): they
    are rendered again by the next run, so the orphan part is dropped, never printed twice.
    """
    import json

    if not rows:
        Path(part).unlink(missing_ok=True)
        return
    sidecar = Path(part).with_suffix(".json")
    tmp = sidecar.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, default=str), encoding="utf-8")
    tmp.replace(sidecar)


def printed_before(outbox: Path) -> set[str]:
    """The deliveries already in a print batch of this outbox (any date, any post channel): the
    delivery_id column of every manifest."""
    done: set[str] = set()
    for manifest in outbox.glob("*/*/manifest-*.csv"):
        with manifest.open(newline="", encoding="utf-8") as f:
            done.update(row.get("delivery_id") or "" for row in csv.DictReader(f))
    done.discard("")
    return done


def finalize(channel_dir: Path, channel: str) -> dict:
    """The print batch and manifest of every confirmed part in channel_dir/.parts (this run's, and
    any a stopped run left confirmed), named -2, -3 … when a batch of that name exists.

    A letter already in an earlier print batch of the same outbox (a manifest says so: a database
    started again over a kept outbox, a second run of the same night) is left out: the print room
    never prints a letter twice."""
    import json

    from tasks.dispatch.ledger import fresh_path
    from tasks.dispatch.worklists import csv_safe

    parts_dir = channel_dir / ".parts"
    if not parts_dir.is_dir():
        return {}
    already = printed_before(channel_dir.parent.parent)
    confirmed, rows, dropped = [], [], 0
    for part in sorted(parts_dir.glob("part-*.pdf")):
        sidecar = part.with_suffix(".json")
        if not sidecar.exists():
            part.unlink(missing_ok=True)
            continue
        part_rows = json.loads(sidecar.read_text(encoding="utf-8"))
        keep, ranges, page = [], [], 0
        for row in part_rows:
            start = int(row.get("part_page", page))
            end = start + int(row.get("pages") or 0)
            page = end
            if row["delivery_id"] in already:
                dropped += 1
                continue
            already.add(row["delivery_id"])
            keep.append(row)
            ranges.append((start, end))
        if len(keep) == len(part_rows) and all("part_page" in r for r in part_rows):
            spans: list[list[int]] = []  # the kept letters' pages, contiguous runs joined
            for start, end in ranges:
                if spans and spans[-1][1] == start:
                    spans[-1][1] = end
                else:
                    spans.append([start, end])
            confirmed.append((str(part), [tuple(x) for x in spans]))
        elif len(keep) == len(part_rows):
            confirmed.append(str(part))  # a part confirmed before pages were recorded: all of it
        elif keep:
            confirmed.append((str(part), ranges))
        rows += keep
    if dropped:
        from tasks.step import get_logger

        get_logger().warning(
            "print: %d letter(s) of %s already in an earlier print batch of this outbox: left out", dropped, channel_dir
        )
    if not confirmed:
        shutil.rmtree(parts_dir, ignore_errors=True)
        return {}
    batch_pdf = fresh_path(channel_dir / f"print-batch-{channel}.pdf")
    manifest = batch_pdf.with_name(batch_pdf.name.replace("print-batch-", "manifest-")).with_suffix(".csv")
    pages = merge_pdfs(confirmed, batch_pdf)
    first = 1
    tmp = manifest.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for seq, row in enumerate(rows, start=1):
            row = {k: csv_safe(v) for k, v in row.items()}
            w.writerow(dict(row, sequence=seq, first_page=first, tracking_number=""))
            first += int(row.get("pages") or 0)
    tmp.replace(manifest)
    shutil.rmtree(parts_dir, ignore_errors=True)
    out = {"print_batch": str(batch_pdf), "manifest": str(manifest), "pages": pages, "letters": len(rows)}
    if dropped:
        out["already_printed"] = dropped
    return out


# -- the letter channels' batch ----------------------------------------------------------------


class LetterPrinter:
    """Writes each claimed letter's PDF; the print room prints the run's batch PDF."""

    def __init__(self, name: str, css: str, sections: dict[str, tuple[str, str, str]], parts_dir: Path, cfg, now):
        self.name, self.css, self.sections, self.parts_dir, self.cfg, self.now = (
            name,
            css,
            sections,
            parts_dir,
            cfg,
            now,
        )
        self.parts: list[tuple[str, list[str]]] = []
        self.pages: dict[str, int] = {}
        self.starts: dict[str, int] = {}  # anchor → its first page in its part

    def send(self, batch) -> list:
        from tasks.dispatch.ledger import Result

        jobs = [self.sections[item.delivery_id] for item in batch]
        pages, parts, errors = render_many(
            self.css,
            jobs,
            self.parts_dir,
            chunk_size=self.cfg.chunk_size,
            processes=self.cfg.processes,
            parallel_from=self.cfg.parallel_from,
            starts=self.starts,
        )
        self.parts += parts
        out = []
        for item in batch:
            anchor, _, path = self.sections[item.delivery_id]
            if anchor in errors:
                out.append(Result(item.delivery_id, "failed", self.name, error=errors[anchor]))
            else:
                self.pages[item.delivery_id] = pages[anchor]
                out.append(Result.file_written(item.delivery_id, self.name, path, self.now, pages=pages[anchor]))
        return out


class _Item:
    __slots__ = ("delivery_id",)

    def __init__(self, delivery_id: str):
        self.delivery_id = delivery_id


def run_batch(run, rows: list[dict], channel: str) -> dict:
    from tasks.dispatch.base import counts, deliver, fail_before_claim
    from tasks.dispatch.ledger import check_artifacts, file_stem

    folder = run.channel_dir(channel)
    failures: list[tuple[str, str]] = []
    sections: dict[str, tuple[str, str, str]] = {}
    by_id = {}
    for i, row in enumerate(rows):
        if not (row.get("street") and row.get("postal_code") and row.get("city")):
            failures.append((row["delivery_id"], "no postal address"))
            continue
        try:
            ctx = run.context(row)
            ctx.update(anchor=f"L{i}")  # formal layout: message_context (registered, or a formal stage)
            html = run.renderer.letter(ctx)
        except Exception as e:
            failures.append((row["delivery_id"], f"rendering failed: {type(e).__name__}: {e}"))
            continue
        sections[row["delivery_id"]] = (f"L{i}", html, str(folder / f"{file_stem(row['delivery_id'])}.pdf"))
        by_id[row["delivery_id"]] = row
    for delivery_id, why in check_artifacts(run.con, {d: s[2] for d, s in sections.items()}):
        failures.append((delivery_id, why))
        del sections[delivery_id]
    results = fail_before_claim(run, failures)
    printer = LetterPrinter(
        "print" if run.send else "outbox",
        letter_css(run.renderer),
        sections,
        folder / ".parts",
        run.cfg.letters,
        run.now_naive,
    )
    items = [_Item(d) for d in sections]
    sent = deliver(run, channel, items, printer, chunk_size=len(items))
    results += sent
    by_anchor = {sections[d][0]: d for d in sections}
    recorded = {r.delivery_id: r for r in sent if r.status == "sent"}
    for part, anchors in printer.parts:  # the ledger has recorded them: the parts may be printed
        rows = []
        for anchor in anchors:
            r = recorded.get(by_anchor[anchor])
            if r is None:
                continue
            row = by_id[r.delivery_id]
            rows.append(
                {
                    "delivery_id": r.delivery_id,
                    "action_id": row["action_id"],
                    "channel": channel,
                    "stage": row["stage"],
                    "customer_id": row["customer_id"],
                    "name": row.get("name"),
                    "street": row.get("street"),
                    "postal_code": row.get("postal_code"),
                    "city": row.get("city"),
                    "country": row.get("country"),
                    "pages": printer.pages.get(r.delivery_id, 0),
                    "part_page": printer.starts.get(anchor, 0),
                    "file": r.artifact_path,
                    "registered": "yes" if channel == "registered_letter" else "no",
                }
            )
        confirm_part(part, rows)
    return {"counts": counts(results)}
