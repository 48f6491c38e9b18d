"""Lambda function: the SES SMTP credentials custom resource (IAM access key -> Secrets Manager)."""
