"""Lambda function: the TURN drain steps (out of the TURN name, relay drained, cleanup)."""
