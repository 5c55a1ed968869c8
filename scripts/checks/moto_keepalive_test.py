"""The moto wrapper's server keeps connections open and never mixes up two requests on one.

Starts scripts/lib/moto_server.py on a free loopback port (stopped again by its pid at the
end) and checks, over plain HTTP/1.1 connections and through the AWS SDK:

- three calls on one connection: no `Connection: close`, the same socket throughout, and
  every answer carries its length;
- a request body sent chunked is decoded, and the connection serves the next call;
- a body the handler never reads (a GET with a body) does not leak into the next request;
- a HEAD answer keeps the application's length and sends no body;
- a bad Content-Length is refused with 400 and the connection closed;
- a client that sends `Connection: close` is answered with `Connection: close`;
- a request that arrives in pieces (a head cut in two, a chunked body split inside a chunk)
  holds up no other connection and is answered once whole; `Expect: 100-continue` is answered
  with one `100 Continue` before the body; bytes that are no request end only their connection;
- a client that sends many calls and reads none of the answers loses its connection, and
  another client is still answered;
- boto3 puts an item and reads it back twenty times through the server (the real SDK path);
- DynamoDB calls answered by moto's handler directly answer exactly as moto's own way through
  Flask does (status, body, content type, checksum): each call is sent twice, once plainly and
  once with an `Origin` header, which sends it moto's way; successes, a failed condition, a
  cancelled transaction, a missing table and a malformed body;
- headers the wrapper does not split itself (a folded line) still reach the handler, and the
  header lines it splits itself come out as `http.client.parse_headers` makes them.

Exits non-zero on the first failure.

Usage: python3 scripts/checks/moto_keepalive_test.py
"""

import http.client
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[2]
AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=0"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the moto wrapper exited with {server.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("the moto wrapper did not listen within 60 s")


def dynamodb(connection, action: str, body, **extra):
    """One DynamoDB call; `body` a request (dict) or raw text sent as it is."""
    headers = {
        "X-Amz-Target": f"DynamoDB_20120810.{action}",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": AUTH,
        **extra,
    }
    payload = body if isinstance(body, str) else json.dumps(body)
    connection.request("POST", "/", body=payload.encode(), headers=headers)
    answer = connection.getresponse()
    return answer, answer.read()


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"moto keep-alive: {what}")


def kept_alive(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    table = {
        "TableName": "keepalive",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    answer, _ = dynamodb(connection, "CreateTable", table)
    check(answer.status == 200, f"CreateTable answered {answer.status}")
    first = connection.sock
    for _ in range(2):
        answer, body = dynamodb(connection, "ListTables", {})
        check(answer.getheader("Connection") != "close", "the server closed after an answer")
        check(answer.getheader("Content-Length") == str(len(body)), "an answer without its length")
        check(b"keepalive" in body, f"ListTables answered {body[:200]!r}")
    check(connection.sock is first and first is not None, "a second socket was opened")

    # A chunked body, then the next call on the same connection.
    item = json.dumps({"TableName": "keepalive", "Item": {"pk": {"S": "chunked"}}}).encode()
    connection.putrequest("POST", "/")
    for name, value in {
        "X-Amz-Target": "DynamoDB_20120810.PutItem",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": AUTH,
        "Transfer-Encoding": "chunked",
    }.items():
        connection.putheader(name, value)
    connection.endheaders()
    for piece in (item[:10], item[10:]):
        connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    connection.send(b"0\r\n\r\n")
    answer = connection.getresponse()
    answer.read()
    check(answer.status == 200, f"a chunked PutItem answered {answer.status}")
    answer, body = dynamodb(
        connection, "GetItem", {"TableName": "keepalive", "Key": {"pk": {"S": "chunked"}}}
    )
    check(json.loads(body).get("Item") == {"pk": {"S": "chunked"}}, f"GetItem found {body!r}")

    # A body nobody reads must not become the next request line.
    connection.request("GET", "/moto-api/", body=b"x" * 5000)
    answer = connection.getresponse()
    answer.read()
    answer, body = dynamodb(connection, "ListTables", {})
    check(answer.status == 200 and b"keepalive" in body, "an unread body broke the next request")

    connection.request("HEAD", "/moto-api/")
    answer = connection.getresponse()
    check(answer.read() == b"", "a HEAD answer carried a body")
    answer, _ = dynamodb(connection, "ListTables", {})
    check(answer.status == 200, "the connection did not survive a HEAD")
    check(connection.sock is first, "a second socket was opened along the way")
    connection.close()


def refusals(port: int) -> None:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n")
    answer = raw.recv(65536)
    check(answer.startswith(b"HTTP/1.1 400"), f"a bad Content-Length answered {answer[:60]!r}")
    check(b"Connection: close" in answer, "a bad Content-Length left the connection open")
    raw.settimeout(5)
    check(raw.recv(1) == b"", "the server kept a refused connection open")
    raw.close()

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answer, _ = dynamodb(connection, "ListTables", {}, Connection="close")
    check(answer.status == 200, f"ListTables with Connection: close answered {answer.status}")
    check(answer.getheader("Connection") == "close", "a client's close was not answered in kind")
    connection.close()


def read_answer(raw: socket.socket) -> bytes:
    """One whole answer (its head and a body of its Content-Length) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = raw.recv(65536)
        check(chunk != b"", f"the server closed inside an answer: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += raw.recv(65536)
    return head + b"\r\n\r\n" + body


def raw_call(action: str, body: bytes, extra: bytes = b"") -> bytes:
    """A DynamoDB call as bytes on the wire (Content-Length unless `extra` frames it)."""
    framing = extra or b"Content-Length: %d\r\n" % len(body)
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: DynamoDB_20120810." + action.encode()
        + b"\r\nContent-Type: application/x-amz-json-1.0\r\nAuthorization: "
        + AUTH.encode() + b"\r\n" + framing + b"\r\n" + body
    )


def in_pieces(port: int) -> None:
    """A request that arrives in pieces holds up nobody, and is answered once it is whole."""
    get = json.dumps({"TableName": "keepalive", "Key": {"pk": {"S": "chunked"}}}).encode()
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    wire = raw_call("GetItem", get)
    slow.sendall(wire[:30])
    other = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    answer, body = dynamodb(other, "ListTables", {})
    check(answer.status == 200, "a request in pieces held up another connection's call")
    slow.sendall(wire[30:-5])
    time.sleep(0.2)
    slow.sendall(wire[-5:])
    answer = read_answer(slow)
    check(answer.startswith(b"HTTP/1.1 200") and b'"chunked"' in answer, f"pieces: {answer!r}")

    # A chunked body whose chunks arrive split, and the next call on the same connection.
    item = json.dumps({"TableName": "keepalive", "Item": {"pk": {"S": "split"}}}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(item), item)
    wire = raw_call("PutItem", chunked, b"Transfer-Encoding: chunked\r\n")
    cut = len(wire) - len(chunked) + 10
    slow.sendall(wire[:cut])
    time.sleep(0.1)
    slow.sendall(wire[cut:])
    answer = read_answer(slow)
    check(answer.startswith(b"HTTP/1.1 200"), f"a split chunked PutItem answered {answer[:80]!r}")
    slow.sendall(raw_call("GetItem", json.dumps({"TableName": "keepalive", "Key": {"pk": {"S": "split"}}}).encode()))
    answer = read_answer(slow)
    check(b'"split"' in answer, f"the split chunked item was not stored: {answer[-200:]!r}")
    slow.close()

    # Expect: 100-continue: the server asks for the body, then answers once.
    waiting = socket.create_connection(("127.0.0.1", port), timeout=10)
    wire = raw_call("GetItem", get, b"Content-Length: %d\r\nExpect: 100-continue\r\n" % len(get))
    waiting.sendall(wire[: -len(get)])
    interim = waiting.recv(65536)
    check(interim == b"HTTP/1.1 100 Continue\r\n\r\n", f"no 100 Continue: {interim!r}")
    waiting.sendall(get)
    answer = read_answer(waiting)
    check(answer.startswith(b"HTTP/1.1 200") and b'"chunked"' in answer, f"after 100: {answer!r}")
    waiting.close()

    # Bytes that are no request end their connection only.
    junk = socket.create_connection(("127.0.0.1", port), timeout=10)
    junk.sendall(b"\x00\x01 not http\r\n\r\n")
    answer = junk.recv(65536)
    check(b"400" in answer, f"junk answered {answer[:80]!r}")
    junk.settimeout(5)
    while answer:
        answer = junk.recv(65536)
    junk.close()
    answer, _ = dynamodb(other, "ListTables", {})
    check(answer.status == 200, "the server stopped serving after a malformed request")
    other.close()


def reads_nothing(port: int) -> None:
    """A client that asks for much and reads nothing loses its connection; the others are
    served meanwhile or right after."""
    big = {"TableName": "keepalive", "Item": {"pk": {"S": "big"}, "v": {"S": "x" * 380_000}}}
    setup = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    answer, _ = dynamodb(setup, "PutItem", big)
    check(answer.status == 200, f"PutItem of a big item answered {answer.status}")
    setup.close()
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", port))
    get = json.dumps({"TableName": "keepalive", "Key": {"pk": {"S": "big"}}}).encode()
    stuck.sendall(raw_call("GetItem", get) * 60)  # about 23 MB of answers, never read
    other = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    answer, body = dynamodb(other, "ListTables", {})
    check(answer.status == 200 and b"keepalive" in body, "a client reading nothing stopped the server")
    other.close()
    stuck.settimeout(30)
    received = 0
    try:
        while chunk := stuck.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        pass
    check(received < 60 * 380_000, f"the server wrote all {received} bytes to a client that read nothing")
    stuck.close()


def both_ways(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    key = {"pk": {"S": "both"}}
    calls = [
        ("PutItem", {"TableName": "keepalive", "Item": {**key, "n": {"N": "7"}}}),
        ("GetItem", {"TableName": "keepalive", "Key": key, "ConsistentRead": True}),
        ("GetItem", {"TableName": "keepalive", "Key": {"pk": {"S": "nobody"}}}),
        (
            "PutItem",
            {
                "TableName": "keepalive",
                "Item": key,
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
        ),
        (
            "TransactWriteItems",
            {
                "TransactItems": [
                    {
                        "Update": {
                            "TableName": "keepalive",
                            "Key": key,
                            "UpdateExpression": "SET n = n + :one",
                            "ConditionExpression": "n > :big",
                            "ExpressionAttributeValues": {":one": {"N": "1"}, ":big": {"N": "9"}},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                ]
            },
        ),
        (
            "Query",
            {
                "TableName": "keepalive",
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": "both"}},
            },
        ),
        ("DescribeTable", {"TableName": "missing"}),
        ("GetItem", "{not json"),
    ]
    bodies = []
    for action, body in calls:
        answers = []
        # Plainly (the wrapper's direct way), then with an Origin (moto's way through Flask).
        for extra in ({}, {"Origin": "http://127.0.0.1"}):
            answer, payload = dynamodb(connection, action, body, **extra)
            answers.append(
                (
                    answer.status,
                    payload,
                    answer.getheader("Content-Type"),
                    answer.getheader("x-amz-crc32"),
                )
            )
        check(answers[0] == answers[1], f"{action} answered {answers[0]} directly, {answers[1]} by moto")
        bodies.append(answers[0][1])
    check(b"ConditionalCheckFailed" in bodies[3], "no failed condition")
    check(b"TransactionCanceled" in bodies[4], "no cancelled transaction")

    # A folded header line goes the email parser's way and still arrives.
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = json.dumps({"TableName": "keepalive", "Key": key}).encode()
    raw.sendall(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"
        b"Content-Type: application/x-amz-json-1.0\r\nAuthorization: "
        + AUTH.split(", ")[0].encode()
        + b",\r\n "
        + ", ".join(AUTH.split(", ")[1:]).encode()
        + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    answer = b""
    while chunk := raw.recv(65536):
        answer += chunk
    raw.close()
    check(answer.startswith(b"HTTP/1.1 200") and b'"N": "7"' in answer, f"folded: {answer[:300]!r}")
    connection.close()


def headers_split_alike() -> None:
    sys.path.insert(0, str(ROOT / "scripts" / "lib"))
    import moto_server  # noqa: E402 - the wrapper's module, imported without starting it

    for raw in (
        b"Host: a\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\nContent-Length: 3\r\n\r\n",
        b"Host:   spaced  \r\nEmpty:\r\n\r\n",
        b"Host: a\r\nAuthorization: one,\r\n two\r\n\r\n",
        b"Host: a\r\nBad Name: x\r\nOther: y\r\n\r\n",
        b"NoColon\r\nHost: a\r\n\r\n",
        b"",
    ):
        ours = moto_server.split_headers(io.BytesIO(raw))
        theirs = http.client.parse_headers(io.BytesIO(raw))
        check(
            (list(ours.items()), ours.get_payload()) == (list(theirs.items()), theirs.get_payload()),
            f"{raw!r} split into {list(ours.items())}, not {list(theirs.items())}",
        )


def through_the_sdk(port: int) -> None:
    client = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.put_item(TableName="keepalive", Item={"pk": {"S": "sdk"}, "n": {"N": "1"}})
    for _ in range(20):
        item = client.get_item(TableName="keepalive", Key={"pk": {"S": "sdk"}})["Item"]
        check(item == {"pk": {"S": "sdk"}, "n": {"N": "1"}}, f"the SDK read {item}")


def main() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "lib" / "moto_server.py"), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port, server)
        kept_alive(port)
        refusals(port)
        in_pieces(port)
        reads_nothing(port)
        through_the_sdk(port)
        both_ways(port)
        headers_split_alike()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print("moto keep-alive: one connection serves many calls, bodies never leak between them")


if __name__ == "__main__":
    main()
