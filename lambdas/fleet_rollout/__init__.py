"""Rolling a fleet onto a new launch template with Auto Scaling instance refresh."""
