"""The single host's data volume: attach it, move it to another AZ, or restore it from a snapshot."""
