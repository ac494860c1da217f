"""Rendering: templates/ + one delivery's data → the words of a message.

Two sandboxed Jinja2 environments read the same files:
* `html` — autoescape always on (email HTML parts, letters, worklists, dossiers);
* `text` — no HTML escaping (email text parts, SMS, call scripts, CSV cells).
Values (a customer's name, an address …) are only ever *printed*, never compiled as templates,
so "{{ 7*7 }}" in a name prints as is, and "<script>" is escaped in every HTML output. The
sandbox also keeps a template — which finance edits — away from Python internals.

A stage's wording is one file per channel, language and stage, e.g.
`templates/email/fr/reminder_2.j2`, made of blocks (`subject`, `title`, `body`, `closing`,
`text`, `script` …); `default.j2` serves stages without their own file. Layouts
(`email/layout.html.j2`, `letters/layout.html.j2` …) put the blocks around what every message
shows: the invoices claimed, the total and how to pay. Labels (column names …) are in
templates/i18n.yaml. See templates/README.md.

Amounts and dates follow the language with babel (amounts through relance.core.money, rounded half
up): `1 234,56 €` (narrow no-break space as thousands separator, no-break space before the
symbol) and `16/03/2026` in French, `€1,234.56` and `16 March 2026` in English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from babel import Locale
from babel.dates import format_date
from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, pass_context
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from relance.core import money
from relance.core.paths import TEMPLATES_DIR
from relance.core.policy import Policy, Stage, default_policy
from tasks.dispatch.config import ChannelsConfig

LANGUAGES = ("fr", "en")
LOCALES = {"fr": "fr_FR", "en": "en_GB"}
DATE_FORMATS = {"fr": "dd/MM/yyyy", "en": "d MMMM y"}
#: Template folder of each channel.
KIND = {
    "email": "email",
    "sms": "sms",
    "letter": "letters",
    "registered_letter": "letters",
    "phone": "worklists",
    "visit": "worklists",
    "handoff": "handoff",
}


def language_of(value: str | None) -> str:
    value = (value or "fr").lower()
    return value if value in LANGUAGES else "fr"


# -- filters -----------------------------------------------------------------------------------


def _locale(ctx) -> str:
    return LOCALES[language_of(ctx.get("lang"))]


@lru_cache(maxsize=65536)
def _money(text: str, currency: str, locale: str) -> str:
    return money.format_money(Decimal(text), currency, locale)


@lru_cache(maxsize=8192)
def _date(value: date, fmt: str, locale: str) -> str:
    return format_date(value, fmt, locale=locale)


@pass_context
def f_money(ctx, value: Any, currency: str | None = None) -> str:
    if value is None or value == "":
        return ""
    # the same amount is printed many times a night (text and HTML parts, totals, worklists)
    return _money(str(value), currency or ctx.get("currency") or "EUR", _locale(ctx))


@pass_context
def f_claimed(ctx, charges: dict | None) -> str:
    """The total claimed: principal + charges in the unit's currency, "+ 120,00 €" when the fixed
    indemnity is in another currency than the invoices."""
    if not charges:
        return ""
    text = f_money(ctx, charges["claimed"])
    if charges.get("extra"):
        text += " + " + f_money(ctx, charges["extra"], charges.get("indemnity_currency"))
    return text


@pass_context
def f_number(ctx, value: Any, digits: int = 2) -> str:
    if value is None:
        return ""
    return money.format_decimal(Decimal(str(value)), _locale(ctx), digits)


@pass_context
def f_percent(ctx, value: Any) -> str:
    """A rate in percent, e.g. 12.15 → "12,15 %" (fr, no-break space) or "12.15%" (en)."""
    if value is None:
        return ""
    return money.format_percent(Decimal(str(value)), _locale(ctx), 2)


@pass_context
def f_date(ctx, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return _date(value, DATE_FORMATS[language_of(ctx.get("lang"))], _locale(ctx))


@pass_context
def f_date_long(ctx, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        value = value.date()
    return _date(value, "d MMMM y", _locale(ctx))


def f_paragraphs(value: Any) -> list[Markup]:
    """Blank-line separated paragraphs of an (already escaped) block, single newlines as <br>."""
    text = value if isinstance(value, Markup) else escape(str(value or ""))
    parts = re.split(r"\n\s*\n", str(text).strip())
    return [Markup("<br>\n".join(line.strip() for line in p.strip().splitlines())) for p in parts if p.strip()]


def f_text_paragraphs(value: Any) -> list[str]:
    parts = re.split(r"\n\s*\n", str(value or "").strip())
    return ["\n".join(line.strip() for line in p.strip().splitlines()) for p in parts if p.strip()]


def f_lines(value: Any) -> list[str]:
    """The lines of a multi-line value (a street written on two lines)."""
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def f_ljust(value: Any, width: int) -> str:
    return str(value if value is not None else "").ljust(width)


def f_rjust(value: Any, width: int) -> str:
    return str(value if value is not None else "").rjust(width)


def f_oneline(value: Any) -> str:
    """Whitespace (newlines included) collapsed: for subjects, headers and CSV cells."""
    return re.sub(r"\s+", " ", str(value if value is not None else "")).strip()


@pass_context
def g_plural(ctx, forms: Any, n: int) -> str:
    """The form of a label for the count n in the context's language (CLDR plural rules via babel):
    forms is a mapping {one: …, other: …} from i18n.yaml (or a plain string, the same for any n)."""
    if not isinstance(forms, dict):
        return "" if forms is None else str(forms)
    category = Locale.parse(_locale(ctx)).plural_form(abs(int(n)))
    return str(forms.get(category, forms.get("other", "")))


def human_reference(action_id: str | None, prefix: str = "RL") -> str:
    """ "Notre référence" of a message: a short stable code a person can read out on the phone,
    derived from the internal action id (never printed: it holds the customer id and episode):
    the stage's prefix (policy `stages[].reference_prefix`: MD for a formal notice — mise en
    demeure —, CT for litigation, RL for any other reminder), then the first 40 bits of
    SHA-256(action_id) in RFC 4648 base32 as two groups of four characters, e.g. MD-K7QF-2XBM.
    The same action always gets the same code; finding the action from a code: `select action_id
    from dunning_actions` and compare codes."""
    import base64
    import hashlib

    if not action_id:
        return ""
    code = base64.b32encode(hashlib.sha256(str(action_id).encode("utf-8")).digest()[:5]).decode("ascii")
    return f"{prefix}-{code[:4]}-{code[4:8]}"


def due_state(days_past_due: int | None) -> str:
    if days_past_due is None or days_past_due < 0:
        return "not_due"
    return "due_today" if days_past_due == 0 else "overdue"


def due_sentence(invoices: list[dict], forms: dict, lang: str, locale: str) -> str:
    """Where the claimed invoices stand on the send date, in words that fit the facts (contract §3):
    "la facture ci-dessous était payable le 04/02/2026" for an overdue one, "… arrive à échéance ce
    jour" only for one due today, "… arrive prochainement à échéance, le …" before; singular or
    plural by count; groups of different states are named with their invoice numbers."""
    groups: dict[str, list[dict]] = {}
    for inv in invoices:
        groups.setdefault(due_state(inv.get("days_past_due")), []).append(inv)
    category = lambda n: Locale.parse(locale).plural_form(n)  # noqa: E731
    parts = []
    whole = len(groups) == 1
    for state in ("overdue", "due_today", "not_due"):
        items = groups.get(state)
        if not items:
            continue
        n = len(items)
        form = category(n) if category(n) in ("one", "other") else "other"
        if whole:
            subject = forms["subject_all"][form]
        else:
            numbers = [str(i["number"]) for i in items]
            listed = numbers[0] if n == 1 else ", ".join(numbers[:-1]) + forms["and"] + numbers[-1]
            subject = forms["subject_named"][form].format(numbers=listed)
        dates = sorted({i["due_date"] for i in items if i.get("due_date")})
        fmt = lambda d: _date(d, DATE_FORMATS[lang], locale)  # noqa: E731
        if state == "due_today":
            verb = forms["due_today"][form]
        elif len(dates) <= 1:
            verb = forms[state][form].format(date=fmt(dates[0]) if dates else "")
        else:
            verb = forms[state + "_between"][form].format(first=fmt(dates[0]), last=fmt(dates[-1]))
        parts.append(f"{subject} {verb}")
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + forms["and"] + parts[-1]


class _Undefined(StrictUndefined):
    """A misspelt variable is an error (caught by the template check before anything is sent),
    but `{{ "s" if n > 1 }}` — an inline if without else — prints nothing, as one would expect."""

    __slots__ = ()

    def __str__(self) -> str:
        if self._undefined_hint and "inline if" in self._undefined_hint:
            return ""
        return super().__str__()


def _environment(autoescape: bool, templates_dir: Path) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=autoescape,
        undefined=_Undefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters.update(
        money=f_money,
        claimed=f_claimed,
        number=f_number,
        percent=f_percent,
        date=f_date,
        date_long=f_date_long,
        paragraphs=f_paragraphs if autoescape else f_text_paragraphs,
        lines=f_lines,
        ljust=f_ljust,
        rjust=f_rjust,
        oneline=f_oneline,
    )
    env.globals.update(plural=g_plural)
    return env


@dataclass
class RenderedEmail:
    subject: str
    text: str
    html: str


class Renderer:
    """Templates for one run; compiled templates are cached per environment."""

    def __init__(self, cfg: ChannelsConfig, templates_dir: Path | None = None):
        self.cfg = cfg
        self.dir = Path(templates_dir or TEMPLATES_DIR)
        self.html = _environment(True, self.dir)
        self.text = _environment(False, self.dir)
        self.i18n = yaml.safe_load((self.dir / "i18n.yaml").read_text(encoding="utf-8"))

    # -- lookup --------------------------------------------------------------------------------
    @lru_cache(maxsize=256)  # noqa: B019 (one renderer per run: the cache goes with it)
    def stage_template(self, channel: str, lang: str, stage: str) -> str:
        """templates/<kind>/<lang>/<stage>.j2, else that folder's default.j2. `stage` is the name of
        the stage's wording files (the context's `wording`: policy `stages[].template`, else the code)."""
        kind = KIND[channel]
        for name in (f"{kind}/{lang}/{stage}.j2", f"{kind}/{lang}/default.j2"):
            if (self.dir / name).is_file():
                return name
        raise TemplateNotFound(f"{kind}/{lang}/{stage}.j2 (nor {kind}/{lang}/default.j2)")

    def blocks(self, env: SandboxedEnvironment, name: str, ctx: dict, which: tuple[str, ...]) -> dict[str, Any]:
        tmpl = env.get_template(name)
        context = tmpl.new_context(ctx)
        out: dict[str, Any] = {}
        for block in which:
            fn = tmpl.blocks.get(block)
            text = "".join(fn(context)) if fn else ""
            out[block] = Markup(text) if env.autoescape else text
        return out

    def labels(self, lang: str) -> dict[str, str]:
        return self.i18n[language_of(lang)]

    # -- per channel ---------------------------------------------------------------------------
    def email(self, ctx: dict) -> RenderedEmail:
        name = self.stage_template("email", ctx["lang"], _wording(ctx))
        text_blocks = self.blocks(self.text, name, ctx, ("subject", "body", "closing"))
        html_blocks = self.blocks(self.html, name, ctx, ("body", "closing"))
        subject = f_oneline(text_blocks["subject"])
        text = self.text.get_template("email/layout.txt.j2").render(ctx, **text_blocks)
        html = self.html.get_template("email/layout.html.j2").render(ctx, subject=subject, **html_blocks)
        return RenderedEmail(subject=subject, text=text.strip() + "\n", html=html)

    def sms(self, ctx: dict) -> str:
        name = self.stage_template("sms", ctx["lang"], _wording(ctx))
        return f_oneline(self.blocks(self.text, name, ctx, ("text",))["text"])

    def letter(self, ctx: dict) -> str:
        """One letter as an HTML <section> (letters are rendered many to a document, see post.py)."""
        name = self.stage_template(ctx["channel"], ctx["lang"], _wording(ctx))
        blocks = self.blocks(self.html, name, ctx, ("title", "body", "closing"))
        return self.html.get_template("letters/layout.html.j2").render(ctx, **blocks)

    def script(self, ctx: dict) -> str:
        name = self.stage_template(ctx["channel"], ctx["lang"], _wording(ctx))
        return self.blocks(self.text, name, ctx, ("script",))["script"].strip()

    def page(self, template: str, ctx: dict, html: bool = True) -> str:
        env = self.html if html else self.text
        return env.get_template(template).render(ctx)


def _wording(ctx: dict) -> str:
    return ctx.get("wording") or ctx["stage"]


_RENDERERS: dict[int, tuple[ChannelsConfig, Renderer]] = {}


def get_renderer(cfg: ChannelsConfig) -> Renderer:
    """One Renderer per settings object (templates compile once per process, not once per batch)."""
    hit = _RENDERERS.get(id(cfg))
    if hit is None or hit[0] is not cfg:
        hit = _RENDERERS[id(cfg)] = (cfg, Renderer(cfg))
    return hit[1]


# -- the context every template sees -----------------------------------------------------------


def country_name(code: str | None, lang: str) -> str:
    if not code:
        return ""
    try:
        return Locale.parse(LOCALES[language_of(lang)]).territories.get(code.upper(), code.upper())
    except Exception:  # pragma: no cover
        return code.upper()


def message_context(row: dict, cfg: ChannelsConfig, run_as_of: date, i18n: dict) -> dict:
    """The variables of every template, from one row of sql/dispatch/context.sql. The row's
    `stage_keys` is its stage in the run's policy (relance.core.policy.Stage; None for a stage the policy
    does not have): what the stage does comes from there, never from its code."""
    lang = language_of(row.get("language"))
    keys: Stage | None = row.get("stage_keys")
    cred = cfg.creditor
    invoices = [
        {
            "number": inv["invoice_id"],
            "kind": inv.get("kind") or "invoice",
            "issue_date": inv["issue_date"],
            "due_date": inv["due_date"],
            "amount": inv["amount"],
            "open_amount": inv["open_amount"],
            "days_past_due": inv["days_past_due"],
            "interest": inv.get("interest"),
            "indemnity": inv.get("indemnity"),
        }
        for inv in row.get("invoices") or []
    ]
    amount_due = row.get("amount_due")
    if amount_due is None:
        amount_due = sum((i["open_amount"] for i in invoices), Decimal("0.00"))
    charges = None
    if (
        row.get("charges_total") is not None
        or row.get("interest_amount") is not None
        or row.get("indemnity_amount") is not None
    ):
        currency = row.get("currency") or "EUR"
        interest = row.get("interest_amount") or Decimal("0.00")
        indemnity = row.get("indemnity_amount") or Decimal("0.00")
        indemnity_currency = row.get("indemnity_currency") or currency
        in_total = indemnity_currency == currency
        total = row.get("charges_total")
        if total is None:
            total = interest + (indemnity if in_total else Decimal("0.00"))
        charges = {
            "interest": interest,
            "indemnity": indemnity,
            "indemnity_currency": indemnity_currency,
            "total": total,
            "claimed": amount_due + total,
            # the fixed indemnity is in its own currency (EUR): added to the total only in that currency
            "extra": None if in_total or not indemnity else indemnity,
        }
    creditor_country = (cred.country or "FR").upper()
    country = (row.get("country") or "FR").upper()
    customer = {
        "id": row.get("customer_id"),
        "name": row.get("name") or "",
        "email": row.get("email"),
        "phone": row.get("phone"),
        "street": row.get("street") or "",
        "postal_code": row.get("postal_code") or "",
        "city": row.get("city") or "",
        "country": country,
        # International mail: the destination country, in capitals, as the address's last line.
        "country_line": country_name(country, cred.language).upper() if country != creditor_country else "",
        "segment": (row.get("segment") or "b2b").lower(),
        "language": lang,
        "collector": row.get("collector"),
    }
    charge_kind = row.get("charge_kind") or "commercial"
    deadline_days = cfg.formal_notice.deadline_days
    payment_url = f"{cred.payment_url}?ref={row.get('customer_id')}" if cred.payment_url else None
    labels = i18n[lang]
    states = [due_state(i["days_past_due"]) for i in invoices]
    rates = []
    for r in row.get("rates") or []:
        year, half = str(r["half_year"]).split("-H")
        rates.append(
            {
                "half_year": r["half_year"],
                "period": labels["half_year"][half].format(year=year),
                "reference_rate": r["reference_rate"],
                "annual_rate": r["annual_rate"],
                "margin": r["annual_rate"] - r["reference_rate"],
            }
        )
    return {
        "lang": lang,
        "t": i18n[lang],
        "currency": row.get("currency") or "EUR",
        "stage": row.get("stage"),
        "channel": row.get("channel"),
        "delivery_id": row.get("delivery_id"),
        "action_id": row.get("action_id"),
        "action_as_of": row.get("action_as_of"),
        "letter_date": run_as_of,
        "place": cfg.letters.place or cred.city,
        "customer": customer,
        "b2b": customer["segment"] == "b2b",
        # the ladder's charge rule (docs/policy.md "Ladders"): commercial (reference rate + margin,
        # the fixed indemnity), legal_rate (the legal interest rate, no indemnity)
        "charge_kind": charge_kind,
        # the fixed recovery indemnity is stated (b2b L441-10, public buyers D2192-35)
        "with_indemnity": charge_kind == "commercial" and customer["segment"] in ("b2b", "public"),
        "creditor": cred.model_dump(),
        "signatory_title": cred.signatory_title.get(lang, ""),
        "invoices": invoices,
        "invoice_count": len(invoices),
        "total": amount_due,
        "charges": charges,
        "deadline_days": deadline_days,
        "payment_reference": row.get("customer_id"),
        # what the debtor quotes on the transfer: the invoices the message claims
        "invoice_reference": ", ".join(str(i["number"]) for i in invoices),
        # "Notre référence": a short stable code, never the internal action id (human_reference)
        "reference": human_reference(row.get("action_id"), keys.reference_prefix if keys is not None else "RL"),
        # where the invoices stand on the day the message is sent (the wording must fit it)
        "due_state": "overdue" if "overdue" in states else "due_today" if "due_today" in states else "not_due",
        "overdue_count": states.count("overdue"),
        "due_sentence": due_sentence(invoices, labels["due_status"], lang, LOCALES[lang]),
        "rates": rates,
        "figures_as_of": row.get("figures_as_of") or run_as_of,
        "payment_url": payment_url,
        "registered": row.get("channel") == "registered_letter",
        # a letter's layout: formal (the title as a heading) for a registered letter or a formal stage
        "formal": row.get("channel") == "registered_letter" or (keys is not None and keys.formal),
        # the name of the stage's wording files (templates/<kind>/<lang>/<wording>.j2)
        "wording": keys.wording if keys is not None else row.get("stage"),
        "draft": False,  # True for the drafts shown before approval (tasks/dispatch/drafts.py)
    }


def sample_row(
    stage: str,
    channel: str,
    language: str,
    *,
    name: str = "Boulangerie Martin SARL",
    policy: Policy | None = None,
    ladder: str | None = None,
) -> dict:
    """Sample values for previews and the template check: three invoices overdue (one not yet due
    for a stage before the due date, one due today for a stage on it), charges on a charged stage —
    the stage as the policy (default: policies/default.yaml) has it in `ladder` (None: standard),
    with that ladder's charge rule and the segment of the first rule choosing it (else b2b)."""
    pol = policy or default_policy()
    keys = pol.stage(stage, ladder)
    kind, margin, indemnity_each, _ = pol.charge_rule(ladder or "standard")
    segment = next(
        (r.when.segment[0] for r in pol.ladder_rules if r.ladder == ladder and r.when.segment),
        "b2b",
    )
    D = Decimal
    as_of = date(2026, 3, 16)
    invoices = [
        {
            "invoice_id": "INV-2026-000123",
            "kind": "invoice",
            "issue_date": date(2026, 1, 5),
            "due_date": date(2026, 2, 4),
            "amount": D("1234.56"),
            "open_amount": D("1234.56"),
            "days_past_due": 40,
        },
        {
            "invoice_id": "INV-2026-000187",
            "kind": "invoice",
            "issue_date": date(2026, 1, 20),
            "due_date": date(2026, 2, 19),
            "amount": D("980.00"),
            "open_amount": D("480.00"),
            "days_past_due": 25,
        },
        {
            "invoice_id": "INV-2026-000201",
            "kind": "invoice",
            "issue_date": date(2026, 2, 2),
            "due_date": date(2026, 3, 4),
            "amount": D("75.10"),
            "open_amount": D("75.10"),
            "days_past_due": 12,
        },
    ]
    if keys is not None and keys.offset_days < 0:
        invoices = [dict(invoices[2], due_date=date(2026, 3, 21), days_past_due=-5)]
    elif keys is not None and keys.offset_days == 0:
        invoices = [dict(invoices[2], due_date=as_of, days_past_due=0)]
    charged = keys is not None and keys.charged and kind != "none"
    # commercial: ECB 2.15 % + the margin from the due date; legal rate (a consumer's formal
    # notice): 2.62 % (2026-H1, other cases), nothing accrued before the notice
    rate = D("2.62") if kind == "legal_rate" else D("2.15")
    annual = rate + margin
    if charged:
        for inv in invoices:
            days = 0 if kind == "legal_rate" else inv["days_past_due"]
            inv["interest"] = (inv["open_amount"] * annual / 100 * days / 365).quantize(D("0.01"))
            inv["indemnity"] = indemnity_each
    amount_due = sum((i["open_amount"] for i in invoices), D("0.00"))
    interest = sum((i.get("interest", D(0)) for i in invoices), D("0.00")) if charged else None
    indemnity = indemnity_each * len(invoices) if charged else None
    rates = [{"half_year": "2026-H1", "reference_rate": rate, "annual_rate": annual}] if charged else []
    return {
        "rates": rates,
        "delivery_id": "preview-delivery",
        "action_id": "preview-action",
        "channel": channel,
        "status": "planned",
        "attempts": 0,
        "action_as_of": as_of,
        "stage": stage,
        "stage_keys": keys,
        "ladder": ladder or "standard",
        "charge_kind": kind,
        "episode_id": "preview-episode",
        "customer_id": "C001",
        "currency": "EUR",
        "amount_due": amount_due,
        "interest_amount": interest,
        "indemnity_amount": indemnity,
        "indemnity_currency": "EUR" if charged else None,
        "charges_total": (interest + indemnity) if charged else None,
        "name": name,
        "email": "compta@martin.example",
        "phone": "+33639980012",
        "street": "12 rue des Lilas",
        "postal_code": "69003",
        "city": "Lyon",
        "country": "FR",
        "language": language,
        "segment": segment,
        "collector": "Julie Bernard",
        "invoices": invoices,
    }
