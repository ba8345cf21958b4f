"""State backends: one interface (base.Store), a memory and a Redis implementation."""
