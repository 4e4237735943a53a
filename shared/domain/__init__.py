"""Pure rules more than one service decides by (no I/O here)."""
