"""Authentication: certificates and tokens."""
