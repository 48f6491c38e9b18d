"""Shared library of every Lambda function: contract names, AWS helpers, Scalelite/BBB/STUN clients, the
Powertools tools (observability) and the custom-resource pattern (custom_resource).

Every function's code asset is `lambdas/` with this folder and the function's own folders
(cdk_constructs/lambda_function.py), so handlers import this package as `common`.
"""
