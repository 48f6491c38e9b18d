"""Lambda function: the custom resource that creates an application's database role and database."""
