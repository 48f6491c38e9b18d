"""User data for the BBB and TURN hosts: shell bootstraps, unit files and the renderer the stacks call."""
