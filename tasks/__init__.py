"""The steps of the dunning process, one module each; every step is a plain function that
becomes a Prefect task when it runs inside a flow (see tasks.step)."""
