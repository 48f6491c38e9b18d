"""The relay's pure policies, no sockets: who may authenticate (`auth`), stateless nonces (`nonce`),
which peers a client may reach (`peers`), and allocation/rate quotas (`quotas`, `shared_quotas` for the
table the worker processes share)."""
