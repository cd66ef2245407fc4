"""Control loops: each watches a slice of the API and moves the world toward it."""
