"""Shared library of the lifecycle Lambdas: contract names, AWS helpers, Scalelite/BBB/STUN clients.

Every function's code asset is the whole `lambdas/` folder, so handlers import this package as `common`.
"""
