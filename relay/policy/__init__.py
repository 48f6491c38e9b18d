"""The relay's policies, no sockets: who may authenticate (`auth`), stateless nonces (`nonce`), which
peers a client may reach (`peers`), allocation/rate quotas (`quotas`, `shared_quotas` for the table the
worker processes share) and the TLS policy with its certificate loading and hot reload (`tls`). The
configuration loader checks settings against them, so they import nothing but `relay.stun`."""
