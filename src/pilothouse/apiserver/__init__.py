"""The Kubernetes API server: REST, watch, discovery, OpenAPI, tables, auth."""
