"""Revision-based stores: the interface, an in-memory fake and the SQLite backend."""
