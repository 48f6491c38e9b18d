"""Lambda function: the custom resource that runs Greenlight's first-administrator task."""
