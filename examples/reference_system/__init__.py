"""The whole reference system as local processes: ``uv run python -m reference_system``."""
