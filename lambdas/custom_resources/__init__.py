"""Lambda function: the lifecycle automation's deploy-time custom resources (fleet_bootstrap)."""
