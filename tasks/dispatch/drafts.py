"""Drafts of the letters waiting for approval, for the person who approves them.

    render_drafts(db, as_of, outbox) -> [{"action_id", "delivery_id", "channel", "path"}, …]

A formal notice goes out only once a person has approved it (`pending_approval`). So that they
can read what they approve, each of its letters (letter, registered_letter) is rendered exactly as
dispatch will render it — same templates, same context query, same PDF layout — with a "draft,
not sent" mark, into outbox/<as_of>/drafts/<ledger.file_stem(delivery id)>.pdf. Nothing is claimed or recorded:
the ledger does not change, and the letter that is sent after approval is rendered again then.
The statements of late-payment charges waiting for approval are drafted there too
(tasks/late_charges.render_drafts, one PDF per statement).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from tasks import warehouse
from tasks.dispatch import ledger

DRAFT_CHANNELS = ("letter", "registered_letter")


def pending_letters(con, as_of: date) -> list[str]:
    """The letter deliveries of actions dated up to as_of that wait for approval."""
    from tasks.dispatch.approval import pending_actions

    return [
        d
        for _, d in sorted(
            (a["as_of"], d)
            for a in pending_actions(con, as_of).values()
            if a["stage"] != "late_charges_statement"  # drafted by tasks/late_charges.render_drafts
            for d, channel in zip(a["delivery_ids"], a["channels"])
            if channel in DRAFT_CHANNELS
        )
    ]


def render_drafts(
    db: str, as_of: date, outbox: str, channels_config: str | None = None, policy: str | None = None
) -> list[dict]:
    """Write a draft PDF of every letter waiting for approval; returns what was written. policy: the
    policy file whose stages say how each letter looks (default: policies/default.yaml)."""
    from relance.core.policy import load_policy
    from tasks import late_charges
    from tasks.dispatch.config import load_channels_config
    from tasks.dispatch.main import load_batch
    from tasks.dispatch.post import letter_css, render_many
    from tasks.dispatch.render import get_renderer, message_context

    cfg = load_channels_config(channels_config)
    renderer = get_renderer(cfg)
    pol = load_policy(policy)
    folder = Path(outbox) / as_of.isoformat() / "drafts"
    with warehouse.open_db(db) as con:
        ledger.ensure_tables(con)
        ids = pending_letters(con, as_of)
        rows = load_batch(con, ids, as_of, pol) if ids else []
        # the statements of late-payment charges waiting for approval (tasks/late_charges.py)
        statements = late_charges.render_drafts(con, as_of, folder, cfg, renderer, pol)
    if not rows:
        return statements
    folder.mkdir(parents=True, exist_ok=True)
    jobs, written, used = [], [], set()
    for i, row in enumerate(rows):
        ctx = message_context(row, cfg, as_of, renderer.i18n)
        ctx.update(anchor=f"D{i}", draft=True)
        path = folder / f"{ledger.file_stem(row['delivery_id'])}.pdf"
        if path in used:  # never one draft over another's
            path = folder / f"{ledger.file_stem(row['delivery_id'])}-{i}.pdf"
        used.add(path)
        jobs.append((f"D{i}", renderer.letter(ctx), str(path)))
        written.append(
            {
                "action_id": row["action_id"],
                "delivery_id": row["delivery_id"],
                "channel": row["channel"],
                "path": str(path),
            }
        )
    _, _, errors = render_many(
        letter_css(renderer), jobs, None, chunk_size=cfg.letters.chunk_size, processes=1, parallel_from=len(jobs) + 1
    )
    return [w for w, (anchor, _, _) in zip(written, jobs) if anchor not in errors] + statements
