"""Lambda function: the launch steps (DNS, readiness, registration, completion)."""
