"""Sources: each lands the same raw_* tables (all text) from files, PostgreSQL or an HTTP API."""

ENTITIES: tuple[str, ...] = ("customers", "invoices", "payments", "holds")

#: The columns of each entity, in the contract's order (shared/spec/contract.md §1).
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "name",
        "email",
        "phone",
        "street",
        "postal_code",
        "city",
        "country",
        "language",
        "segment",
        "dunning_block",
        "collector",
        "tags",
    ),
    "invoices": ("invoice_id", "customer_id", "kind", "issue_date", "due_date", "amount", "currency"),
    "payments": ("payment_id", "customer_id", "invoice_id", "paid_date", "amount", "currency"),
    "holds": ("hold_id", "customer_id", "invoice_id", "kind", "start_date", "end_date"),
}

#: Columns a file must have in its header; the others may be absent (their defaults apply).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "name"),
    "invoices": ("invoice_id", "customer_id", "issue_date", "due_date", "amount"),
    "payments": ("payment_id", "customer_id", "paid_date", "amount"),
    "holds": ("hold_id", "customer_id", "kind", "start_date"),
}

#: Entities a source must provide; payments and holds may be absent (none of them then).
REQUIRED_ENTITIES: tuple[str, ...] = ("customers", "invoices")

#: The date columns of every entity. A source that types them as timestamps (PostgreSQL
#: timestamp/timestamptz, Parquet naive timestamps) gives their calendar date, the time dropped.
DATE_COLUMNS: tuple[str, ...] = ("issue_date", "due_date", "paid_date", "start_date", "end_date")
