"""Lambda function: the BBB fleet's least-loaded custom termination policy."""
