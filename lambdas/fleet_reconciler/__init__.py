"""Lambda function: the scheduled reconciler (stale state, lost lifecycle events)."""
