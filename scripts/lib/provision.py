"""Creates what the handlers need in the local AWS services (moto), idempotently.

Reads the endpoint, region and names from the environment (see scripts/dev-env.sh), creates the
lease and cache tables and the two database secrets, and prints KEY=VALUE lines for the
resulting ARNs. Passwords arrive on standard input as JSON, never on the command line.
"""

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError

# The key schemas of template.yaml's tables (every key attribute a string), by logical id, and
# the variable naming the local table. scripts/checks/template_check.py holds them against the
# template as the local stack reads it; this file runs before anything is built, so it cannot
# ask the stack itself.
KEY_SCHEMAS = {
    "LeaseTable": [("pk", "HASH"), ("sk", "RANGE")],
    "CacheTable": [("pk", "HASH")],
}
TABLE_VARIABLES = {"LeaseTable": "LEASE_TABLE", "CacheTable": "CACHE_TABLE"}


def main() -> None:
    creds = json.load(sys.stdin)
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    region = os.environ["AWS_REGION"]
    session = boto3.session.Session(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    tables = [(os.environ[TABLE_VARIABLES[table]], keys) for table, keys in KEY_SCHEMAS.items()]
    existing = set(ddb.list_tables()["TableNames"])
    for name, keys in tables:
        if name in existing:
            continue
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )

    sm = session.client("secretsmanager", endpoint_url=endpoint)
    for key, name in (("app", "DB_SECRET_ARN"), ("admin", "DB_ADMIN_SECRET_ARN")):
        secret_name = f"leasehold/local/{key}"
        value = json.dumps(creds[key])
        try:
            arn = sm.create_secret(Name=secret_name, SecretString=value)["ARN"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceExistsException":
                raise
            arn = sm.put_secret_value(SecretId=secret_name, SecretString=value)["ARN"]
        print(f"{name}={arn}")


if __name__ == "__main__":
    main()
