"""dispatch — not built yet (see its issue)."""
