"""The async API client shared by every component (informers, work queues, leader election)."""
