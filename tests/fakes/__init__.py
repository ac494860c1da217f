"""Test doubles that speak real protocols on loopback (SendGrid v3, Twilio Messages), and a
builder of ledger scenarios (the rows the escalation ladder would plan)."""
