"""The moto wrapper's fast path answers exactly what moto's own serializer answers.

Runs a set of DynamoDB calls (items with every attribute type, nested maps and lists, a
query, updates, a transaction cancelled with the old item, a table description) in process,
once through moto's model-driven serializer and once with the wrapper's pass-through of
attribute values, and compares the raw JSON bodies (as parsed JSON: key order aside). Exits non-zero on any difference.

Usage: python3 scripts/checks/moto_wrapper_test.py
"""

import importlib.util
import json
import pathlib
import sys

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEY = {"pk": {"S": "pool"}, "sk": {"S": "item"}}
ITEM = {
    **KEY,
    "number": {"N": "1.50"},
    "nested": {
        "M": {
            "list": {"L": [{"S": "x"}, {"N": "2"}, {"BOOL": False}, {"NULL": True}]},
            "empty": {"M": {}},
        }
    },
    "strings": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2"]},
    "binary": {"B": b"hello"},
    "flag": {"BOOL": True},
}


def load_wrapper():
    spec = importlib.util.spec_from_file_location(
        "moto_server", ROOT / "scripts" / "lib" / "moto_server.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answers() -> list:
    """The answers (raw bodies) to the same calls against a fresh in-process moto."""
    out = []
    bodies = []
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.meta.events.register(
            "before-parse.dynamodb.*",
            lambda response_dict, **_: bodies.append(json.loads(response_dict["body"] or b"{}")),
        )
        db.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        db.put_item(TableName="t", Item=ITEM)
        db.put_item(TableName="t", Item={"pk": {"S": "pool"}, "sk": {"S": "other"}})
        out.append(db.get_item(TableName="t", Key=KEY, ConsistentRead=True))
        out.append(
            db.query(
                TableName="t",
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": "pool"}},
                ReturnConsumedCapacity="TOTAL",
            )
        )
        out.append(
            db.update_item(
                TableName="t",
                Key=KEY,
                UpdateExpression="SET #n = #n + :one",
                ExpressionAttributeNames={"#n": "number"},
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="ALL_NEW",
            )
        )
        try:
            db.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": "t",
                            "Key": KEY,
                            "UpdateExpression": "SET #n = #n + :one",
                            "ConditionExpression": "#n > :big",
                            "ExpressionAttributeNames": {"#n": "number"},
                            "ExpressionAttributeValues": {
                                ":one": {"N": "1"},
                                ":big": {"N": "100"},
                            },
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                ]
            )
            out.append("transaction committed")
        except ClientError as e:
            out.append(e.response.get("CancellationReasons"))
        out.append(db.delete_item(TableName="t", Key=KEY, ReturnValues="ALL_OLD"))
        table = db.describe_table(TableName="t")["Table"]
        for changing in ("CreationDateTime", "TableId"):
            table.pop(changing, None)
        out.append(table)
    for answer in out:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    for body in bodies:
        for description in ("Table", "TableDescription"):
            for changing in ("CreationDateTime", "TableId"):
                body.get(description, {}).pop(changing, None)
    return out + bodies


def main() -> None:
    model = answers()
    load_wrapper().pass_attribute_values_through()
    fast = answers()
    if model != fast:
        for a, b in zip(model, fast):
            if a != b:
                print(f"moto's serializer: {a}\nthe wrapper's:     {b}", file=sys.stderr)
        sys.exit("the moto wrapper's fast path answers differently")
    if len(model) < 10:
        sys.exit(f"only {len(model)} answers were captured")
    if model[0]["Item"]["binary"] != {"B": b"hello"}:
        sys.exit(f"binary attribute came back as {model[0]['Item']['binary']}")
    print(f"moto wrapper: {len(model)} answers the same through both serializers")


if __name__ == "__main__":
    main()
