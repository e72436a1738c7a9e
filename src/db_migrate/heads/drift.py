"""Model drift (placeholder until runtime lands)."""
def model_drift(project, *, scratch_url=None, timeout=None):
    from db_migrate.verdict import Unchecked
    return [], None, [], [Unchecked(what="model drift", reason="not implemented yet")]
