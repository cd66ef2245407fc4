"""Encryption at rest: upstream's EncryptionConfiguration and k3s's ``secrets-encrypt``."""
