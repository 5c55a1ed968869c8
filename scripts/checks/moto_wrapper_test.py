"""The moto wrapper's shortcuts answer exactly what moto itself answers.

Runs a set of DynamoDB calls (items with every attribute type, nested maps and lists, a
query, updates, transactions that commit and transactions cancelled after an earlier item of
theirs was written, expressions checked twice over, refused for an unused name or value or
for their syntax, conditions evaluated again as their item changes, update expressions of
every kind of clause, path and function, a table description) in process, once as moto is
and once with the wrapper's pass-through of attribute values, its item-only transaction
backups, its remembered lookups (module list, method names), its remembered expression
checks, update expression trees, condition tokens, condition trees, passed update checks and
update trees copied node by node, and compares the raw JSON bodies (as parsed JSON: key order
aside) and what the table holds afterwards; and checks that a tree copied node by node has
the shape `copy.deepcopy` gives it, shares no node with the original and was copied without
it. Exits non-zero on any difference.

Usage: python3 scripts/checks/moto_wrapper_test.py
"""

import importlib.util
import json
import os
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


def transaction(db, committing: bool):
    """Raises a counter, puts a new item and checks a third: cancelled by the check unless
    `committing` (moto writes the first two before it finds that the check fails)."""
    other = {"pk": {"S": "pool"}, "sk": {"S": "other"}}
    new = {"pk": {"S": "pool"}, "sk": {"S": f"new-{committing}"}, "flag": {"BOOL": True}}
    try:
        db.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "t",
                        "Key": KEY,
                        "UpdateExpression": "SET #n = #n + :one",
                        "ExpressionAttributeNames": {"#n": "number"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Put": {"TableName": "t", "Item": new}},
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": other,
                        "ConditionExpression": "attribute_exists(pk)"
                        if committing
                        else "attribute_not_exists(pk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        )
        return "committed"
    except ClientError as e:
        return e.response.get("CancellationReasons")


def outcome(call, **kwargs):
    """A call's answer, or its error's code and message (moto in process raises some of its
    refusals as plain exceptions)."""
    try:
        answer = call(**kwargs)
        answer.pop("ResponseMetadata", None)
        return answer
    except ClientError as e:
        return (e.response["Error"]["Code"], e.response["Error"]["Message"])
    except (ValueError, KeyError) as e:
        return (type(e).__name__, str(e))


def checked_twice(db) -> list:
    """The same expressions twice over: accepted, and refused for an unused name or value,
    for their syntax, and after being accepted with other names."""
    key = {"pk": {"S": "pool"}, "sk": {"S": "other"}}
    update = {"TableName": "t", "Key": key, "UpdateExpression": "SET #n = :one"}
    condition = "attribute_not_exists(#n) OR #n >= :zero"
    names = {"#n": "count"}
    values = {":one": {"N": "1"}, ":zero": {"N": "0"}}
    out = []
    for _ in range(2):
        out.append(outcome(db.update_item, ConditionExpression=condition,
                           ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                           ReturnValues="ALL_NEW", **update))
        out.append(outcome(db.update_item, ConditionExpression=condition,
                           ExpressionAttributeNames={**names, "#unused": "x"},
                           ExpressionAttributeValues=values, **update))
        out.append(outcome(db.update_item, ConditionExpression=condition,
                           ExpressionAttributeNames=names,
                           ExpressionAttributeValues={**values, ":unused": {"N": "2"}}, **update))
        out.append(outcome(db.update_item, ConditionExpression="#n >=",
                           ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                           **update))
        out.append(outcome(db.transact_write_items, TransactItems=[{"Update": {
            **update, "ConditionExpression": condition, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values}}]))
        out.append(outcome(db.transact_write_items, TransactItems=[{"Update": {
            **update, "ConditionExpression": "#m >= :zero", "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values}}]))
        out.append(outcome(db.query, TableName="t", KeyConditionExpression="pk = :p",
                           FilterExpression="#n >= :zero", ExpressionAttributeNames=names,
                           ExpressionAttributeValues={":p": {"S": "pool"}, ":zero": {"N": "0"}}))
        out.append(outcome(db.query, TableName="t", KeyConditionExpression="pk = :p",
                           FilterExpression="#n >= :zero",
                           ExpressionAttributeNames={**names, "#unused": "x"},
                           ExpressionAttributeValues={":p": {"S": "pool"}, ":zero": {"N": "0"}}))
        # A reserved word as a name, a condition that cannot be cut into tokens, and one
        # condition with two values (tokens remembered, values not).
        out.append(outcome(db.update_item, ConditionExpression="count >= :zero",
                           ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}},
                           TableName="t", Key=key, UpdateExpression="SET other = :one"))
        out.append(outcome(db.update_item, ConditionExpression="#n >= :zero ^ #n",
                           ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                           **update))
        # Update expressions whose checks need only the expression, its names and the key:
        # refused every time; one accepted with some names and refused with others.
        for expression, aliases in (
            ("SET pk = :one", {}),
            ("SET #n = :one SET other = :one", names),
            ("SET #a = :one, #b = :one", {"#a": "x", "#b": "y"}),
            ("SET #a = :one, #b = :one", {"#a": "x", "#b": "x"}),
        ):
            third = {"pk": {"S": "elsewhere"}, "sk": {"S": "third"}}
            out.append(outcome(db.update_item, TableName="t", Key=third, UpdateExpression=expression,
                               ExpressionAttributeValues={":one": {"N": "1"}},
                               **({"ExpressionAttributeNames": aliases} if aliases else {})))
        for limit in ("0", "100"):
            out.append(outcome(db.transact_write_items, TransactItems=[{"Update": {
                **update, "ConditionExpression": "#n < :limit", "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": limit}}}}]))
    return out


def evaluated_as_items_change(db) -> list:
    """One condition (expression, names and values the same every time) against an item that
    changes between calls: a counter raised while it stays under a limit, by update and by
    transaction; a put only while the item is missing; a filter before and after the counter
    grew; a condition holding a binary value."""
    key = {"pk": {"S": "gauge"}, "sk": {"S": "counter"}}
    raise_it = {
        "TableName": "t",
        "Key": key,
        "UpdateExpression": "SET #n = if_not_exists(#n, :zero) + :one",
        "ConditionExpression": "attribute_not_exists(#n) OR #n < :limit",
        "ExpressionAttributeNames": {"#n": "n"},
        "ExpressionAttributeValues": {
            ":zero": {"N": "0"}, ":one": {"N": "1"}, ":limit": {"N": "3"}
        },
    }
    filtered = {
        "TableName": "t",
        "KeyConditionExpression": "pk = :p",
        "FilterExpression": "#n >= :two",
        "ExpressionAttributeNames": {"#n": "n"},
        "ExpressionAttributeValues": {":p": {"S": "gauge"}, ":two": {"N": "2"}},
    }
    new = {
        "TableName": "t",
        "Item": {"pk": {"S": "gauge"}, "sk": {"S": "once"}, "b": {"B": b"x"}},
        "ConditionExpression": "attribute_not_exists(pk)",
    }
    binary = {
        "TableName": "t",
        "Key": {"pk": {"S": "gauge"}, "sk": {"S": "once"}},
        "UpdateExpression": "SET b = :other",
        "ConditionExpression": "b = :b",
        "ExpressionAttributeValues": {":b": {"B": b"x"}, ":other": {"B": b"y"}},
    }
    out = [outcome(db.query, **filtered)]
    for step in range(5):
        if step % 2:
            out.append(outcome(db.transact_write_items, TransactItems=[{"Update": raise_it}]))
        else:
            out.append(outcome(db.update_item, ReturnValues="UPDATED_NEW", **raise_it))
        out.append(outcome(db.query, **filtered))
    out += [outcome(db.put_item, **new), outcome(db.put_item, **new)]
    out += [outcome(db.update_item, **binary), outcome(db.update_item, **binary)]
    return out


def updated_in_every_way(db) -> list:
    """Update expressions of every kind of clause, path and function (their trees are copied
    before moto resolves them), each answered with the item as it is after."""
    key = {"pk": {"S": "shapes"}, "sk": {"S": "item"}}
    db.put_item(TableName="t", Item={
        **key,
        "l": {"L": [{"N": "1"}, {"S": "two"}, {"M": {"k": {"L": [{"N": "3"}]}}}]},
        "s": {"SS": ["a", "b"]},
        "m": {"M": {"k": {"L": [{"N": "0"}]}, "n": {"N": "5"}}},
    })
    names = {"#l": "l", "#s": "s", "#m": "m", "#k": "k", "#c": "c", "#x": "nothere"}
    out = []
    for expression, values in (
        ("SET #l = list_append(#l, :more), #m.#k[0] = :one, #c = if_not_exists(#c, :zero) + :one",
         {":more": {"L": [{"S": "x"}]}, ":one": {"N": "1"}, ":zero": {"N": "0"}}),
        ("SET #l[2].#k[0] = #m.n - :one, #m.added = :more", {":one": {"N": "1"},
                                                           ":more": {"M": {"x": {"N": "1"}}}}),
        ("REMOVE #l[1], #l[0], #m.n", None),
        ("ADD #s :set, #c :one", {":set": {"SS": ["c"]}, ":one": {"N": "2"}}),
        ("DELETE #s :gone", {":gone": {"SS": ["a"]}}),
        ("SET #m.#x.deeper = :one", {":one": {"N": "1"}}),
        ("SET #c = #c + :text", {":text": {"S": "x"}}),
    ):
        request = {"TableName": "t", "Key": key, "UpdateExpression": expression,
                   "ExpressionAttributeNames": {n: v for n, v in names.items() if n in expression},
                   "ReturnValues": "ALL_NEW"}
        if values:
            request["ExpressionAttributeValues"] = values
        out.append(outcome(db.update_item, **request))
    return out


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
        out.append(transaction(db, committing=True))
        out.append(transaction(db, committing=False))
        out.append(db.scan(TableName="t", ConsistentRead=True)["Items"])
        out.append(db.delete_item(TableName="t", Key=KEY, ReturnValues="ALL_OLD"))
        table = db.describe_table(TableName="t")["Table"]
        for changing in ("CreationDateTime", "TableId"):
            table.pop(changing, None)
        out.append(table)
        out.append(checked_twice(db))
        out.append(evaluated_as_items_change(db))
        out.append(updated_in_every_way(db))
    for answer in out:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    for body in bodies:
        for description in ("Table", "TableDescription"):
            for changing in ("CreationDateTime", "TableId"):
                body.get(description, {}).pop(changing, None)
    return out + bodies


UPDATE_EXPRESSIONS = (
    "SET a = :one",
    "SET #l = list_append(#l, :more), #m.#k[0] = :one, #c = if_not_exists(#c, :zero) + :one",
    "SET #l[2].#k[0] = #m.n - :one, #m.added = :more REMOVE x[3], y",
    "ADD #s :set, #c :one DELETE z :gone",
)


def shape(root) -> list:
    """A tree as (type, children as shapes or values, parent as the index of its node)."""
    nodes = []

    def walk(node):
        nodes.append(node)
        return [walk(c) if hasattr(c, "children") else c for c in node.children or []]

    children = walk(root)
    index = {id(n): i for i, n in enumerate(nodes)}
    parents = [index.get(id(n.parent), "outside" if n.parent is not None else None) for n in nodes]
    return [[type(n).__name__ for n in nodes], children, parents]


def node_ids(root) -> set:
    """The identities of a tree's nodes."""
    ids, stack = set(), [root]
    while stack:
        node = stack.pop()
        ids.add(id(node))
        stack.extend(c for c in node.children or [] if hasattr(c, "children"))
    return ids


def copies_like_deepcopy(wrapper) -> None:
    """The wrapper's copy of update expression trees: the shape `copy.deepcopy` gives, no node
    shared with the original, and made without `copy.deepcopy` (so the fast way is taken)."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    deep = wrapper.copy.deepcopy
    for expression in UPDATE_EXPRESSIONS:
        tree = UpdateExpressionParser.make(expression)
        expected = shape(deep(tree))
        used = []
        wrapper.copy.deepcopy = lambda *args, **kwargs: used.append(args) or deep(*args, **kwargs)
        try:
            copied = wrapper.copy_update_tree(tree)
        finally:
            wrapper.copy.deepcopy = deep
        mine, theirs = node_ids(copied), node_ids(tree)
        if shape(copied) != expected or mine & theirs or used:
            sys.exit(f"the wrapper copies the tree of {expression!r} otherwise than deepcopy: "
                     f"{shape(copied)} against {expected}, {len(mine & theirs)} nodes shared, "
                     f"deepcopy called {len(used)} times")


def main() -> None:
    # In process only: an endpoint of the local services (.local/env) would take the calls
    # past moto's in-process mock to the running server.
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    model = answers()
    wrapper = load_wrapper()
    modules = sorted(wrapper.moto_backends.list_of_moto_modules())
    from moto.dynamodb.responses import DynamoHandler

    names = sorted(wrapper.moto_responses.method_names_from_class(DynamoHandler))
    wrapper.pass_attribute_values_through()
    wrapper.copy_only_touched_items()
    wrapper.remember_static_lookups()
    wrapper.check_expressions_once()
    wrapper.lex_conditions_once()
    wrapper.evaluate_conditions_from_one_tree()
    wrapper.validate_updates_once()
    wrapper.copy_update_trees_node_by_node()
    copies_like_deepcopy(wrapper)
    fast = answers()
    remembered = wrapper.moto_responses.method_names_from_class(DynamoHandler)
    if sorted(wrapper.moto_backends.list_of_moto_modules()) != modules or sorted(remembered) != names:
        sys.exit("the moto wrapper remembers other module or method names than moto finds")
    if "transact_write_items" not in names or "dynamodb" not in modules:
        sys.exit(f"moto's lookups were not seen: {len(names)} names, {len(modules)} modules")
    if model != fast:
        for a, b in zip(model, fast):
            if a != b:
                print(f"moto's serializer: {a}\nthe wrapper's:     {b}", file=sys.stderr)
        sys.exit("the moto wrapper's fast path answers differently")
    items = {item["sk"]["S"]: item for item in model[6]}
    if model[4] != "committed" or "new-False" in items or items["item"]["number"] != {
        "N": "3.50"
    }:
        sys.exit(f"moto itself did not commit or cancel as expected: {model[4:7]}")
    checks = model[9]
    refused = [answer for answer in checks if isinstance(answer, tuple)]
    if len(checks) != 32 or checks[:16] != checks[16:] or len(refused) != 22:
        sys.exit(f"moto itself did not accept and refuse the checked expressions as expected: {checks}")
    changing = model[10]
    counts = [len(answer["Items"]) for answer in changing[0:11:2]]
    refused = [isinstance(answer, tuple) or "CancellationReasons" in str(answer)
               for answer in changing[1:11:2] + changing[11:]]
    expected = [False] * 3 + [True] * 2 + [False, True, False, True]
    if counts != [0, 0, 1, 1, 1, 1] or refused != expected:
        sys.exit(f"moto itself did not evaluate the repeated conditions as expected: {changing}")
    updated = [isinstance(answer, tuple) for answer in model[11]]
    if updated != [False] * 5 + [True] * 2:
        sys.exit(f"moto itself did not apply and refuse the updates as expected: {model[11]}")
    if len(model) < 12:
        sys.exit(f"only {len(model)} answers were captured")
    if model[0]["Item"]["binary"] != {"B": b"hello"}:
        sys.exit(f"binary attribute came back as {model[0]['Item']['binary']}")
    print(f"moto wrapper: {len(model)} answers the same as moto alone")


if __name__ == "__main__":
    main()
