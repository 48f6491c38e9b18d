"""The TURN shared secret for `probe`: from a file, or from Secrets Manager by ARN or name (plain SecretString,
docs/host-contract.md). The secret is only held in memory to derive REST credentials; it is never printed."""

from __future__ import annotations

from pathlib import Path

from bbb_on_aws.checks import Failure


def load(secret_file: Path | None, secret_arn: str | None, region: str | None = None) -> str | None:
    if secret_file is not None and secret_arn is not None:
        raise Failure("both --secret-file and --secret-arn given", "ambiguous secret", "give only one of them")
    if secret_file is not None:
        try:
            secret = secret_file.read_text().strip()
        except OSError as error:
            raise Failure(
                f"cannot read {secret_file}: {error.strerror}",
                "the file is missing or unreadable",
                "give the path of a file holding the TURN shared secret",
            ) from None
        if not secret:
            raise Failure(f"{secret_file} is empty", "no secret in the file", "write the TURN shared secret into it")
        return secret
    if secret_arn is not None:
        return _from_secrets_manager(secret_arn, region)
    return None


def _from_secrets_manager(secret_id: str, region: str | None) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if region is None and secret_id.startswith("arn:"):
        region = secret_id.split(":")[3]
    try:
        value = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise Failure(
            f"Secrets Manager: {code} for {secret_id}",
            "the secret does not exist in this region or these credentials may not read it",
            "check the ARN (stack output of the shared stack), the region and secretsmanager:GetSecretValue permission",
        ) from None
    except BotoCoreError as error:
        raise Failure(
            f"Secrets Manager: {error}",
            "no AWS credentials or region",
            "configure AWS credentials (AWS_PROFILE) and --region",
        ) from None
    secret = value.get("SecretString", "").strip()
    if not secret:
        raise Failure(f"{secret_id} has no SecretString", "not the TURN shared secret", "use the TURN secret's ARN")
    return secret
