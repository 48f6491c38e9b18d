"""The scalable shape's front end on ECS: Greenlight v3 (greenlight.py) and Scalelite (scalelite.py), with
what their containers share (tasks.py). stacks/frontend.py composes them with the cluster, the load balancer
and the data tier, and grants where they meet.

Both build into the scope they are given (the stack) rather than into a construct of their own, so that
their resources keep the logical IDs they had when the stack built them inline: a new construct level would
rename, and so replace, every running service, task definition and log group.
"""
