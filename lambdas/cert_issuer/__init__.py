"""The fleet certificate issuer: one wildcard certificate for the BBB fleet's subdomain, by ACME DNS-01 through
Route 53, kept in Secrets Manager (docs/host-contract.md, cdk_constructs/certificates/README.md)."""
