"""Custom resource handlers for the CDK Provider framework (`on_event` only, no `is_complete`)."""
