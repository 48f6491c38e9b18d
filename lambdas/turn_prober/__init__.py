"""Lambda function: the one-minute STUN prober of the TURN fleet."""
