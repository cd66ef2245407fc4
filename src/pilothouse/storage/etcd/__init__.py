"""etcd as the datastore: a v3 gRPC client and the store built on it."""
