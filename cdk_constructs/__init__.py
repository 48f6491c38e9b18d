"""Reusable CDK constructs of the BBB-on-AWS app (not named `constructs`: that is the CDK base library)."""
