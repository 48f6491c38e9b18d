"""Lambda function: routes this group's lifecycle events to one named execution."""
