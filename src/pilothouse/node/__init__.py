"""The node side: the agent that runs pods (real or hollow) and reports their status."""
