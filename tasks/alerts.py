"""Alerts when a run fails: the flows' on_failure / on_crashed hook.

    RELANCE_ALERT_WEBHOOK  a URL that receives a JSON POST (Slack/Teams-style incoming webhook,
                           or any HTTP endpoint);
    RELANCE_ALERT_EMAIL    an operations address, emailed through SendGrid (the email channel's
                           key: SENDGRID_API_KEY or the Secret block `sendgrid-api-key`; sender
                           RELANCE_ALERT_FROM, default the channels config's from_email).

The alert says which run failed and why (flow, run id and name, as_of, state and its message)
and nothing else: no parameters besides the date, no personal data, no secrets. An alert that
cannot be delivered is logged and never hides the run's own failure.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from typing import Any

from relance.core.urls import redact_urls

log = logging.getLogger("relance.alerts")

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_SECRETISH = re.compile(r"(?i)(api[_-]?key|token|password|secret|authorization)\S*\s*[:=]\s*\S+")


def scrub(text: str | None, limit: int = 500) -> str:
    """A state message fit for an alert: no email addresses, no credentials, bounded length."""
    text = text or ""
    text = redact_urls(text)  # relance.core.urls: no password, user token, query or fragment
    text = _SECRETISH.sub(r"\1=***", text)
    text = _EMAIL.sub("<email>", text)
    return text[:limit] + ("…" if len(text) > limit else "")


def alert_payload(flow: Any, flow_run: Any, state: Any) -> dict:
    params = getattr(flow_run, "parameters", None) or {}
    as_of = params.get("as_of") or params.get("end")
    return {
        "event": "relance.run.failed",
        "flow": getattr(flow, "name", str(flow)),
        "flow_run_id": str(getattr(flow_run, "id", "")),
        "flow_run_name": getattr(flow_run, "name", None),
        "deployment_id": str(flow_run.deployment_id) if getattr(flow_run, "deployment_id", None) else None,
        "as_of": str(as_of) if as_of else None,
        "start": str(params["start"]) if params.get("start") else None,
        "state": getattr(state, "name", None) or str(getattr(state, "type", "")),
        "message": scrub(getattr(state, "message", None)),
    }


def _post_webhook(url: str, payload: dict, timeout: float = 10.0) -> int:
    # Slack and Teams incoming webhooks show `text`; other endpoints read the fields
    body = json.dumps(
        payload
        | {
            "text": f"relance: {payload['flow']} run {payload['flow_run_name']} "
            f"(as_of {payload['as_of']}) is {payload['state']}: {payload['message']}"
        }
    ).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status


def _send_email(to: str, payload: dict) -> int:
    from relance.core.settings import get_settings, resolve_secret

    s = get_settings()
    key = resolve_secret(s.sendgrid_api_key, s.sendgrid_key_block)
    if not key:
        raise RuntimeError("no SendGrid API key (SENDGRID_API_KEY or the Secret block) for the alert email")
    sender = s.alert_from
    if not sender:
        from tasks.dispatch.config import load_channels_config

        sender = load_channels_config(None).email.from_email
    from tasks.dispatch.email import sendgrid_client  # the official client, never following a redirect

    subject = f"[relance] {payload['flow']} {payload['flow_run_name']} {payload['state']}"
    text = "\n".join(f"{k}: {v}" for k, v in payload.items() if v is not None)
    body = {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": sender},
        "subject": subject,
        "content": [{"type": "text/plain", "value": text}],
        "categories": ["relance-alert"],
    }
    client = sendgrid_client(key, s.sendgrid_host.rstrip("/"))
    return client.client.mail.send.post(request_body=body).status_code


def alert(flow: Any, flow_run: Any, state: Any) -> dict:
    """The hook: post the webhook and/or email the operations address. Returns what was done."""
    payload = alert_payload(flow, flow_run, state)
    done: dict[str, Any] = {}
    from relance.core.settings import get_settings

    s = get_settings()
    url, to = s.alert_webhook, s.alert_email
    if not url and not to:
        log.warning(
            "relance: run %s failed; no alert configured (RELANCE_ALERT_WEBHOOK / RELANCE_ALERT_EMAIL)",
            payload["flow_run_id"],
        )
        return done
    if url:
        try:
            done["webhook"] = _post_webhook(url, payload)
        except Exception as e:  # noqa: BLE001 - an alert never hides the failure itself
            log.error("relance: the failure alert webhook could not be posted: %s", type(e).__name__)
            done["webhook"] = f"error: {type(e).__name__}"
    if to:
        try:
            done["email"] = _send_email(to, payload)
        except Exception as e:  # noqa: BLE001
            log.error("relance: the failure alert email could not be sent: %s", type(e).__name__)
            done["email"] = f"error: {type(e).__name__}"
    log.info("relance: failure alert for run %s: %s", payload["flow_run_id"], done)
    return done
