"""`relance preview --stage S --channel C --language L [--out FILE]`: one message with sample values.

For finance, to see a wording change before it goes out. Returns:
* email  — the HTML part (str); fmt="text" gives the text part, fmt="eml" the whole .eml (bytes);
* sms    — the text as it will be sent (after normalisation), with its GSM-7/UCS-2 part count;
* letter, registered_letter — the PDF (bytes);
* phone, visit — the call or visit script (str);
* handoff — the dossier summary as HTML (str).
"""

from __future__ import annotations

from datetime import UTC, datetime

from relance.core.errors import UserError


def preview(
    stage: str,
    channel: str,
    language: str,
    fmt: str | None = None,
    channels_config: str | None = None,
    policy: str | None = None,
    ladder: str | None = None,
) -> str | bytes:
    """policy: the policy file whose stage says the sample's figures, layout and wording (default:
    policies/default.yaml); ladder: the stage as that ladder of the policy has it (its wording and
    charge rule; default: the standard ladder)."""
    from relance.core.policy import load_policy
    from tasks.dispatch.config import load_channels_config
    from tasks.dispatch.render import KIND, LANGUAGES, Renderer, message_context, sample_row

    if channel not in KIND:
        raise UserError(f"--channel {channel!r}: expected one of {', '.join(KIND)}")
    if language not in LANGUAGES:
        raise UserError(f"--language {language!r}: expected one of {', '.join(LANGUAGES)}")
    cfg = load_channels_config(channels_config)
    renderer = Renderer(cfg)
    pol = load_policy(policy)
    if ladder is not None and ladder not in pol.ladder_names:
        raise UserError(f"--ladder {ladder!r}: the policy's ladders are {', '.join(pol.ladder_names)}")
    row = sample_row(stage, channel, language, policy=pol, ladder=ladder)
    ctx = message_context(row, cfg, row["action_as_of"], renderer.i18n)
    if channel == "email":
        rendered = renderer.email(ctx)
        if fmt == "text":
            return rendered.text
        if fmt == "eml":
            from tasks.dispatch.email import OutgoingEmail, build_eml

            msg = OutgoingEmail(
                "preview-delivery",
                "preview-action",
                stage,
                row["email"],
                row["name"],
                rendered.subject,
                rendered.text,
                rendered.html,
            )
            return build_eml(msg, cfg.email, datetime.now(UTC)).as_bytes()
        return rendered.html
    if channel == "sms":
        from tasks.dispatch.sms import normalise, segment

        body = normalise(renderer.sms(ctx), cfg.sms.transliterate)
        parts = segment(body)
        return f"{body}\n\n[{len(body)} characters, {parts.encoding}, {parts.count} part(s)]\n"
    if channel in ("letter", "registered_letter"):
        import tempfile
        from pathlib import Path

        from tasks.dispatch import post

        ctx.update(anchor="L0")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "preview.pdf"
            post.render_chunk(post.letter_css(renderer), [("L0", renderer.letter(ctx), str(out))], None)
            return out.read_bytes()
    if channel in ("phone", "visit"):
        return renderer.script(ctx) + "\n"
    # handoff: the dossier summary
    from tasks.dispatch import post

    lang = cfg.creditor.language
    page = dict(ctx, lang=lang, t=renderer.labels(lang), anchor="D0", steps=[], letters=[])
    css = (renderer.dir / "handoff" / "summary.css").read_text(encoding="utf-8")
    return post.document_html(css, [renderer.page("handoff/summary.html.j2", page)], title="dossier")
