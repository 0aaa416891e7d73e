"""papa — not built yet (see its issue)."""
