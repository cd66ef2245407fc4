"""HTTP handlers: resources, discovery, OpenAPI, health."""
