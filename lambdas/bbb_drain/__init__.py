"""Lambda function: the BBB drain steps (a scale-in that ends no meeting)."""
