"""Runs moto's server on 127.0.0.1 with requests handled one at a time, in the order they arrive.

moto evaluates DynamoDB condition expressions and transactions without any lock, so two
concurrent requests can both pass a condition that only one of them should (DynamoDB itself
serializes writes to an item). Concurrency tests of the lease broker need DynamoDB's
behaviour, so this wrapper serves one request at a time, all of them on one thread, while
clients may hold many keep-alive connections.

moto keeps every item, metric datum and execution as Python objects, so Python's full garbage
collections scan a heap that only grows: measured during a load run, they paused the whole
server for 90 ms at first and over 650 ms after two runs, stalling every lease transaction
behind them (DynamoDB has no such pauses). The wrapper freezes (`gc.freeze`) what moto loaded
before it serves, and every 250 requests it collects the young generations and freezes what
survived, so later collections scan only what is new and stay short. Frozen objects are never
scanned again, so cyclic garbage among them (an object that was alive when frozen and later
dropped) would stay forever: a long session of load runs grew the server past 20 GB. Every
50,000 requests the wrapper therefore unfreezes everything, runs one full collection (one
longer pause) and freezes again. Traced in a hotspot demo, freezing every 1,000 requests and
not at start left Python's own collections of the oldest generation pausing the server for up
to 42 ms during the runs (the first of them, about ten seconds into the first run, scanned all
of moto's modules); freezing at start and every 250 requests, the longest during the runs was
4 ms.

moto builds its JSON answers from the service model, member by member: for a DynamoDB item
that is ten lookups per attribute value, so a Query answering 35 waiters took 20 ms of the
serialized section (GetItem 4 ms). moto's items are already in the wire format
(`{"S": "..."}`, `{"M": {...}}`), so the wrapper passes a DynamoDB attribute value through as
it is when it holds nothing but JSON values (otherwise, say a binary value, moto's own path
encodes it). The answer is the same JSON; only the time changes.

Before a TransactWriteItems, moto deep-copies every table it touches, to put it back if the
transaction fails: with a few dozen lease and waiter items that copy was half the time of
every lease transaction. The wrapper copies only the items the transaction names (it can
change no other), lets moto's table copy be the table itself, and on failure puts those items
back as they were. A failed transaction still changes nothing.

moto also looks up, for every request, what never changes while it runs: the list of its
service modules (a directory listing and a stat per module, to place the request's host) and
the method names of the response class (by reflection). Sampled over a load run, the two took
about 15 % of the serialized section. The wrapper lists the modules once at start and each
class's method names at its first use.

moto's request handlers parse every condition and update expression once only to check that
the request uses each of its attribute names and values (the backend then parses them again
to evaluate them). The lease broker sends the same few expressions again and again, so the
wrapper remembers what that check found for each expression, names and values, and for each
update expression its syntax tree, which the check only reads. An expression that fails to
parse is parsed, and refused, every time.

The backend then parses both kinds again. For an update expression it deep-copies the tree
before resolving names, values and the item in the copy, so it gets the remembered tree too.
A condition expression's tree holds the request's values; the backend builds it from tokens
remembered per expression (cutting a condition into tokens was 40 % of parsing it), and its
test for reserved words looks the word up in a set, not in a list of 573. In a profiler's
samples of a loop of divided-pool acquires and releases, parsing went from 43 % to 26 % of a
transaction's time in the backend. The backend builds that tree twice for every item of a
transaction that has a condition (for the transaction's own check, then again in the put,
update or delete that follows), and once more for every later request with the same
expression. The wrapper builds it once per expression, names and values, from copies of the
names and values (no request can change a remembered tree), and evaluates it against each
item it is asked about; an expression that fails to parse is parsed, and refused, every time.
scripts/bench-broker.sh, each version run twice in turn: a grant transaction 1.38 and 1.64 ms
instead of 1.77 and 1.80, acquire and release 4.90 and 5.73 ms instead of 6.33 and 6.42.

Before it resolves an update expression, the backend copies its tree with `copy.deepcopy`,
whose generic bookkeeping (a memo of every object, reduction protocol, keep-alive list) took
about a quarter of an update's time in the backend under a profiler. The wrapper copies such
a tree node by node: the same node types, values and parent links, nothing shared with the
original; a tree with anything else in it (a node in two places, a value that is not a string
or a number, a parent outside the tree) still goes to `copy.deepcopy`. scripts/bench-broker.sh,
one run of each version in turn: a grant transaction 1.21 ms instead of 1.30, acquire and
release 4.35 ms instead of 4.59.

Of the backend's ten passes over an update expression's tree, three check what depends only
on the expression, its names and the table's key (one clause of a kind, no two paths
overlapping, no key attribute updated): the wrapper skips them for a tree that passed them
with the same names and key (scripts/bench-broker.sh: a grant transaction 1.58 ms instead of
1.79 on average). The passes that resolve values and the item run every time, and an
expression that fails a check is checked, and refused, every time.

werkzeug logs every request it serves: a formatted line under a logging lock, time taken
from the serialized section. The wrapper keeps werkzeug's warnings and errors only.

werkzeug's development server answers every request with `Connection: close`, so each AWS
call opened a new TCP connection and the server a new thread for it, then waited for the
client's end of the socket before the thread ended. Measured in the hotspot scenario's first
half second: about a hundred new connections, and the one thread that accepts them queued for
the interpreter lock behind the request threads, so every call also waited its turn to be
accepted. AWS keeps connections open, and so does this wrapper: HTTP/1.1 keep-alive, each
request read whole before it is dispatched (so a handler that does not read its body cannot
desynchronize the connection), and the answer written in one piece with its length (no
chunked answers) on a socket without Nagle's delay. A connection idle for `IDLE_SECONDS` is
closed.

With a thread per connection and one lock around moto, which request went next was decided
by which thread Python's interpreter lock woke, not by which came first: traced in the hotspot
scenario's first burst (46 acquires at once), the server was never idle while calls waited,
yet single GetItems sat unanswered for 200 ms while later ones went through, and the lock's
own waiting line was empty (the waiting happened before it, for the interpreter). DynamoDB
lets no call wait behind hundreds of milliseconds of others. The wrapper therefore serves
every connection from one thread: it reads whatever has arrived on any connection without
blocking, queues each request once it is whole (head, and body by its length or to its last
chunk, with one `100 Continue` for a client that asks before sending its body), and answers
them one by one in that order, looking for new arrivals after each. A request that arrives
slowly or in pieces holds up nobody; a malformed one ends only its own connection, and so
does a client that reads nothing of its answer for `WRITE_SECONDS`. In two hotspot runs each,
the steady application's slowest acquires took 111 and 149 ms instead of 174 and 233 ms.

What remained of a DynamoDB call's time was mostly the way to moto's handler, not the handler.
Sampled under load: `http.client.parse_headers` hands every request's headers to the `email`
package's feed parser (about 30 % of a GetItem); the way through werkzeug's dispatcher and Flask
to moto's `DynamoHandler.dispatch` another 15 %; the `Date` header, formatted anew for every
answer, 8 % of a transaction. The wrapper splits header lines itself (into the same message
class, the parser's way kept for anything it does not expect: a folded line, a line without a
colon, an odd name), formats the date once per second, and calls `DynamoHandler.dispatch`
straight away for a DynamoDB call (`X-Amz-Target: DynamoDB_20120810.*`) with a plain body and no
`Origin` (so no CORS answer is needed); every other request goes the way moto's server
takes. The answer is the same (scripts/checks/moto_keepalive_test.py compares both ways); the
four raw calls of an acquire and a release (scripts/bench-broker.sh) took 5.4 ms instead of
7.0.

Usage: python3 scripts/lib/moto_server.py PORT
"""

import collections
import copy
import email.parser
import functools
import gc
import http
import http.client
import io
import json
import logging
import select
import selectors
import signal
import socket
import sys
import time

import moto.backends as moto_backends
import moto.core.responses as moto_responses
import moto.dynamodb.comparisons as dynamodb_comparisons
import moto.dynamodb.models as dynamodb_models
import moto.dynamodb.models.table as dynamodb_table
import moto.dynamodb.responses as dynamodb_responses
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing import ast_nodes, validators
from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from botocore.exceptions import ClientError
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request


# Requests between two freezes of the long-lived objects (see the module's docstring).
FREEZE_EVERY = 250
# Requests between two full collections of everything, frozen objects included.
FULL_COLLECTION_EVERY = 50_000
# Seconds a kept-alive connection may sit idle before the server closes it (AWS SDK clients
# drop theirs after 90 s).
IDLE_SECONDS = 300
# The longest request head (request line and headers) the server waits for.
MAX_HEAD_BYTES = 65536
# How much one read of a connection takes at most.
RECEIVE_BYTES = 262144
# How long writing an answer may wait for the client to read what came before.
WRITE_SECONDS = 10
# The DynamoDB calls answered by moto's handler directly (see the module's docstring).
DYNAMODB_TARGET = "DynamoDB_20120810."


def plain_json(value) -> bool:
    """Whether `value` is made of JSON values only (no bytes, dates or objects)."""
    if isinstance(value, (str, bool)):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain_json(v) for v in value)
    return False


def pass_attribute_values_through() -> None:
    """DynamoDB attribute values already in the wire format go out as they are."""
    model_path = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self, serialized, value, shape, key):
        if (
            shape.name == "AttributeValue"
            and key
            and isinstance(value, dict)
            and len(value) == 1
            and next(iter(value)) in shape.members
            and plain_json(value)
        ):
            serialized[key] = value
            return
        model_path(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure


class TablesNotCopied:
    """`copy` for moto's DynamoDB backend: a table "copied" is the table itself."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def touched_items(backend, transact_items) -> list:
    """(table, hash key, range key, the item as it is now or None) for each item named."""
    touched = []
    for entry in transact_items:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        kind, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        attrs = op.get("Item" if kind == "Put" else "Key") if table else None
        if not isinstance(attrs, dict) or table.hash_key_attr not in attrs:
            continue
        try:
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = None
            if table.range_key_attr is not None:
                range_key = DynamoType(attrs[table.range_key_attr])
            now = table.get_item(hash_key, range_key)
        except Exception:  # a malformed key: moto refuses the transaction itself
            continue
        touched.append((table, hash_key, range_key, copy.deepcopy(now)))
    return touched


def put_back(touched) -> None:
    """Puts each item named by a failed transaction back as it was."""
    for table, hash_key, range_key, before in reversed(touched):
        if before is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = before
        else:
            table.items[hash_key] = before


def copy_only_touched_items() -> None:
    """A transaction backs up the items it names instead of whole tables."""
    dynamodb_models.copy = TablesNotCopied
    model_path = dynamodb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        touched = touched_items(self, transact_items)
        try:
            return model_path(self, transact_items)
        except Exception:
            put_back(touched)
            raise

    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


def remember_static_lookups() -> None:
    """The module list and each response class's method names, looked up once."""
    modules = tuple(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules
    names_of = moto_responses.method_names_from_class
    known: dict = {}

    def method_names_from_class(clazz):
        names = known.get(clazz)
        if names is None:
            names = known[clazz] = names_of(clazz)
        return list(names)

    moto_responses.method_names_from_class = method_names_from_class


# Expressions whose check is remembered at most; the memory starts again when full.
CHECKED_EXPRESSIONS = 4096


def remember(memory: dict, key, value) -> None:
    """Keeps `value` under `key`, the memory started again when it holds CHECKED_EXPRESSIONS."""
    if len(memory) >= CHECKED_EXPRESSIONS:
        memory.clear()
    memory[key] = value


def expression_key(expression, names, values) -> tuple:
    """An expression with its names and values as one key (names and values as sorted JSON);
    TypeError for a value JSON cannot hold (a binary one)."""
    return (expression, json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))


class CheckedCondition:
    """What checking a condition expression found, replayed: fresh lists each time, since a
    handler extends the list it is given."""

    def __init__(self, found):
        self.expr_attr_names_found = list(found[0])
        self.expr_attr_values_found = list(found[1])

    def parse(self):
        return None


class CheckingCondition:
    """moto's parser, remembering what it found once it has parsed without error."""

    def __init__(self, parser, remember):
        self._parser = parser
        self._remember = remember

    def parse(self):
        result = self._parser.parse()
        self._remember(
            (tuple(self._parser.expr_attr_names_found), tuple(self._parser.expr_attr_values_found))
        )
        return result

    @property
    def expr_attr_names_found(self):
        return self._parser.expr_attr_names_found

    @property
    def expr_attr_values_found(self):
        return self._parser.expr_attr_values_found


def check_expressions_once() -> None:
    """The request handlers' checks of an expression, remembered per expression, and the
    update expression's tree, which the backend parses again, remembered for both."""
    create = dynamodb_responses.create_condition_expression_parser
    checked: dict = {}

    def create_condition_expression_parser(expr, names, values):
        try:
            key = expression_key(expr, names, values)
        except (TypeError, ValueError):  # a binary value: checked as moto does
            return create(expr, names, values)
        found = checked.get(key)
        if found is not None:
            return CheckedCondition(found)

        return CheckingCondition(
            create(expr, names, values), lambda found: remember(checked, key, found)
        )

    # An update expression that fails to parse raises, and lru_cache keeps no answer for it.
    tree_of = functools.lru_cache(maxsize=CHECKED_EXPRESSIONS)(
        dynamodb_responses.UpdateExpressionParser.make
    )

    class UpdateExpressionParser:
        make = staticmethod(tree_of)

    dynamodb_responses.create_condition_expression_parser = create_condition_expression_parser
    dynamodb_responses.UpdateExpressionParser = UpdateExpressionParser
    # The backend parses the update expression again, then deep-copies the tree before its
    # validator resolves names, values and the item in the copy: the same tree serves both.
    dynamodb_models.UpdateExpressionParser = UpdateExpressionParser


def validate_updates_once() -> None:
    """The backend's checks of an update expression that depend on nothing but the expression,
    its names and the table's key (at most one clause of a kind, no two paths overlapping, no
    key attribute updated) skipped once they passed for that tree, those names and that key."""
    static = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )
    init = validators.UpdateExpressionValidator.__init__
    validate = validators.UpdateExpressionValidator.validate
    passed: dict = {}

    def remembering_init(self, expression, *args, **kwargs):
        init(self, expression, *args, **kwargs)
        # The tree is the one remembered per expression: kept with the key, its id stays its
        # own while the key is remembered.
        names = json.dumps(self.expression_attribute_names, sort_keys=True)
        self.passed_key = (id(expression), names, tuple(self.table.table_key_attrs))
        self.tree = expression

    def validate_once(self):
        if passed.get(self.passed_key) is self.tree:
            self.processors = [p for p in self.processors if not isinstance(p, static)]
        validated = validate(self)
        remember(passed, self.passed_key, self.tree)
        return validated

    validators.UpdateExpressionValidator.__init__ = remembering_init
    validators.UpdateExpressionValidator.validate = validate_once


class _NotATree(Exception):
    """A value that copy_update_tree leaves to copy.deepcopy."""


def copy_update_tree(value, memo=None):
    """`copy.deepcopy` of an update expression's tree, node by node: the same structure, types,
    values and parent links, nothing shared with the original. Anything that is not such a
    tree (a node shared, a value other than a string or number, a parent outside the tree)
    goes to `copy.deepcopy` whole."""
    if memo is not None or not isinstance(value, ast_nodes.Node):
        return copy.deepcopy(value, memo)
    copies: dict = {}  # id of an original node: (the node, its copy)

    def copy_node(node):
        if id(node) in copies or type(node).__dict__.get("__deepcopy__"):
            raise _NotATree
        new = object.__new__(type(node))
        copies[id(node)] = (node, new)
        fields = {}
        for name, field in node.__dict__.items():
            if name == "parent":
                continue
            if name == "children" and isinstance(field, list):
                field = [copy_node(c) if isinstance(c, ast_nodes.Node) else plain(c) for c in field]
            else:
                field = plain(field)
            fields[name] = field
        new.__dict__.update(fields)
        return new

    def plain(field):
        if field is None or type(field) in (str, int, float, bool):
            return field
        raise _NotATree

    try:
        root = copy_node(value)
        for node, new in copies.values():
            if "parent" not in node.__dict__:
                continue
            parent = node.parent
            if parent is not None and id(parent) not in copies:
                raise _NotATree
            new.parent = None if parent is None else copies[id(parent)][1]
    except _NotATree:
        return copy.deepcopy(value)
    return root


def copy_update_trees_node_by_node() -> None:
    """The backend's copy of an update expression's tree (before it resolves names, values and
    the item in the copy) made node by node instead of by `copy.deepcopy`."""
    validators.deepcopy = copy_update_tree


def lex_conditions_once() -> None:
    """The backend's lexing of a condition expression remembered per expression, and its
    reserved-word test a set lookup."""
    lex = ConditionExpressionParser._lex_condition_expression
    tokens_of: dict = {}

    def lex_once(self):
        expression = self.condition_expression
        tokens = tokens_of.get(expression)
        if tokens is None:
            # An expression that does not lex raises here every time, as in moto.
            tokens = tuple(lex(self))
            remember(tokens_of, expression, tokens)
        # The parser consumes its deque; the tokens themselves are never changed.
        return collections.deque(tokens)

    ConditionExpressionParser._lex_condition_expression = lex_once
    # Every use of the list is a membership test of an upper-cased word.
    ReservedKeywords.KEYWORDS = frozenset(ReservedKeywords.get_reserved_keywords())


def evaluate_conditions_from_one_tree() -> None:
    """The backend's tree of a condition (or filter) expression built once per expression,
    names and values, and evaluated against each item it is asked about."""
    build = dynamodb_comparisons.get_filter_expression
    trees: dict = {}

    def get_filter_expression(expr, names, values):
        if not expr:
            return build(expr, names, values)
        try:
            key = expression_key(expr, names, values)
        except (TypeError, ValueError):  # a binary value: parsed as moto does
            return build(expr, names, values)
        tree = trees.get(key)
        if tree is None:
            # Built from copies of the names and values: the tree holds the values, and no
            # later request can change them. An expression that fails to parse raises here
            # every time, as in moto.
            tree = build(expr, json.loads(key[1]), json.loads(key[2]))
            remember(trees, key, tree)
        return tree

    for module in (dynamodb_comparisons, dynamodb_models, dynamodb_table):
        module.get_filter_expression = get_filter_expression


def split_headers(fp, _class=http.client.HTTPMessage):
    """`http.client.parse_headers` without the email parser: the same message class with the
    same (name, value) pairs; anything unusual (a folded line, a line without a colon, a name
    that is empty or holds a space) still goes to the email parser."""
    lines = http.client._read_headers(fp)
    pairs = []
    for raw in lines[:-1]:
        line = raw.decode("iso-8859-1")
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name or "\t" in name:
            return email_parsed(lines, _class)
        pairs.append((name, value.lstrip(" \t").rstrip("\r\n")))
    message = _class()
    message._headers = pairs
    message.set_payload("")
    return message


def email_parsed(lines, _class):
    """What `http.client.parse_headers` makes of header lines already read."""
    return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))


def dynamodb_call(environ) -> bool:
    """Whether a request is a DynamoDB call moto's handler can answer directly."""
    return (
        environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET)
        and "HTTP_CONTENT_ENCODING" not in environ
        and "HTTP_ORIGIN" not in environ
    )


def answer_dynamodb(environ, start_response):
    """A DynamoDB call answered by moto's handler, as moto's Flask view would answer it."""
    request = Request(environ)
    try:
        result = DynamoHandler.dispatch(request, request.url, dict(request.headers))
    except ClientError as error:
        result = 400, {}, error.response["Error"]["Message"]
    status, headers, content = result if len(result) == 3 else (200, {}, result)
    if isinstance(content, str):
        content = content.encode()
    headers = [(name, str(value)) for name, value in headers.items()]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "text/html; charset=utf-8"))
    start_response(f"{status} {http.HTTPStatus(status).phrase}", headers)
    return [content]


class KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's request handler with HTTP/1.1 keep-alive (see the module's docstring)."""

    protocol_version = "HTTP/1.1"
    # The Date header of the current second, formatted once.
    _date = (0, "")

    def date_time_string(self, timestamp=None):
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        second, text = KeepAliveHandler._date
        if second != now:
            text = super().date_time_string(now)
            KeepAliveHandler._date = (now, text)
        return text

    def handle_expect_100(self) -> bool:
        # The server already asked for the body when it waited for it (Connection.received).
        return True

    def run_wsgi(self) -> None:
        self.environ = environ = self.make_environ()
        try:
            body = request_body(environ)
        except (OSError, ValueError) as error:
            self.close_connection = True
            self.answer("400 Bad Request", [("Content-Type", "text/plain")], str(error).encode())
            return
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        started = []
        chunks = []

        def start_response(status, headers, exc_info=None):
            started[:] = [(status, headers)]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            status, headers = started[0]
        except Exception:  # noqa: BLE001 - answered as a server error, like werkzeug does
            logging.getLogger("werkzeug").exception("error on request %s", self.requestline)
            self.close_connection = True
            self.answer("500 Internal Server Error", [("Content-Type", "text/plain")], b"")
            return
        self.answer(status, headers, b"".join(chunks))

    def answer(self, status: str, headers, payload: bytes) -> None:
        """Writes the whole answer at once, with its length (kept from the application for
        answers that carry no body: HEAD, 1xx, 204 and 304)."""
        code = int(status.split(" ", 1)[0])
        bodiless = self.command == "HEAD" or code < 200 or code in (204, 304)
        dropped = {"connection", "transfer-encoding"} | (set() if bodiless else {"content-length"})
        lines = [
            f"{self.protocol_version} {status}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        lines += [f"{name}: {value}" for name, value in headers if name.lower() not in dropped]
        if not bodiless:
            lines.append(f"Content-Length: {len(payload)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + (b"" if bodiless else payload))


def request_body(environ) -> bytes:
    """The request's whole body: chunked (werkzeug decodes it), of its Content-Length, or none."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    length = environ.get("CONTENT_LENGTH") or "0"
    if not length.isdigit():
        raise ValueError(f"bad Content-Length {length!r}")
    body = stream.read(int(length))
    if len(body) != int(length):
        raise OSError("the connection closed inside the request body")
    return body


def request_end(buffer: bytearray) -> int | None:
    """Where the first request in `buffer` ends when it has arrived whole (its head, and its
    body by `Content-Length` or chunked to the last chunk), else None. A head without a usable
    length ends the request at the head: the handler refuses it."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            return len(buffer)
        return None
    body_start = head_end + 4
    length, chunked = 0, False
    for line in bytes(buffer[:head_end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return body_start + length if len(buffer) >= body_start + length else None
    at = body_start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return line_end + 2  # a malformed chunk: the handler refuses the request
        if size == 0:
            # The trailer: header lines (maybe none) up to an empty one.
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            return None if trailer_end < 0 else trailer_end + 4
        at = line_end + 2 + size + 2
        if len(buffer) < at:
            return None


class Connection:
    """A client connection of the arrival-order server: its handler and what it sent that
    has not been served yet."""

    def __init__(self, sock: socket.socket, address, server) -> None:
        self.socket = sock
        self.buffer = bytearray()
        self.continued = False
        self.closed = False
        self.used = time.monotonic()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handler = KeepAliveHandler.__new__(KeepAliveHandler)
        handler.request, handler.client_address, handler.server = sock, address, server
        handler.connection = sock
        handler.wfile = _BlockingWriter(sock)
        handler.close_connection = False
        self.handler = handler

    def received(self) -> list[bytes] | None:
        """Reads what arrived; the requests now whole, or None when the client closed."""
        while True:
            try:
                data = self.socket.recv(RECEIVE_BYTES)
            except BlockingIOError:
                break
            except OSError:
                return None
            if not data:
                return None
            self.buffer += data
        whole = []
        while (end := request_end(self.buffer)) is not None:
            whole.append(bytes(self.buffer[:end]))
            del self.buffer[:end]
            self.continued = False
        if self.buffer and not self.continued and b"\r\n\r\n" in self.buffer:
            head = bytes(self.buffer[: self.buffer.find(b"\r\n\r\n")]).lower()
            if b"\r\nexpect: 100-continue" in head:
                self.continued = True
                try:
                    self.handler.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    return None
        return whole

    def serve(self, request: bytes) -> None:
        """Answers one whole request through the handler, which reads it from memory."""
        self.handler.rfile = io.BytesIO(request)
        try:
            self.handler.handle_one_request()
        except (ConnectionError, TimeoutError):
            self.handler.close_connection = True
        except Exception:  # noqa: BLE001 - one broken request ends its connection, not the server
            logging.getLogger("werkzeug").exception("error on a request")
            self.handler.close_connection = True
        self.used = time.monotonic()

    def close(self) -> None:
        self.closed = True
        try:
            self.socket.close()
        except OSError:
            pass


class _BlockingWriter:
    """Writes a whole answer to a non-blocking socket; a client that reads nothing for
    `WRITE_SECONDS` loses its connection (everybody else waits meanwhile)."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            try:
                sent = self.socket.send(view)
            except BlockingIOError:
                _, writable, _ = select.select([], [self.socket], [], WRITE_SECONDS)
                if not writable:
                    raise TimeoutError("the client read nothing of its answer") from None
                continue
            view = view[sent:]
        return len(data)

    def flush(self) -> None:
        pass


def serve_in_arrival_order(server) -> None:
    """Serves `server`'s connections on this one thread, one whole request at a time, in the
    order the requests arrived whole (see the module's docstring)."""
    listener = server.socket
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    ready: collections.deque = collections.deque()
    connections: set = set()

    def drop(connection: Connection) -> None:
        connections.discard(connection)
        try:
            selector.unregister(connection.socket)
        except (KeyError, ValueError):
            pass
        connection.close()

    def look() -> None:
        """Takes in new connections and the requests that arrived whole, oldest first."""
        for key, _ in selector.select(0 if ready else 1.0):
            if key.data is None:
                while True:
                    try:
                        sock, address = listener.accept()
                    except BlockingIOError:
                        break
                    connection = Connection(sock, address, server)
                    connections.add(connection)
                    selector.register(sock, selectors.EVENT_READ, connection)
                continue
            connection = key.data
            whole = connection.received()
            if whole is None:
                drop(connection)
            else:
                ready.extend((connection, request) for request in whole)

    swept = time.monotonic()
    while True:
        look()
        now = time.monotonic()
        if now - swept >= 1.0:
            swept = now
            for connection in [c for c in connections if now - c.used > IDLE_SECONDS]:
                drop(connection)
        while ready:
            connection, request = ready.popleft()
            if connection.closed:
                continue
            connection.serve(request)
            if connection.handler.close_connection:
                drop(connection)
            # Requests that arrived meanwhile queue behind those already waiting.
            look()


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: moto_server.py PORT")
    port = int(sys.argv[1])
    pass_attribute_values_through()
    copy_only_touched_items()
    remember_static_lookups()
    check_expressions_once()
    lex_conditions_once()
    evaluate_conditions_from_one_tree()
    validate_updates_once()
    copy_update_trees_node_by_node()
    # http.server reads every request's headers through this function.
    http.client.parse_headers = split_headers
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    served = [0]

    def serve(environ, start_response):
        answer = answer_dynamodb if dynamodb_call(environ) else app
        # Materialized here: the response is computed lazily otherwise.
        body = list(answer(environ, start_response))
        served[0] += 1
        if served[0] % FULL_COLLECTION_EVERY == 0:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        elif served[0] % FREEZE_EVERY == 0:
            gc.collect(1)
            gc.freeze()
        return body

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # moto's modules and the service models it loaded: never garbage, never to be scanned.
    gc.collect()
    gc.freeze()
    serve_in_arrival_order(
        make_server("127.0.0.1", port, serve, request_handler=KeepAliveHandler)
    )


if __name__ == "__main__":
    main()
