"""Per-resource strategies over one generic store (create, update, delete, watch)."""
