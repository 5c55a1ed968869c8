"""Runs moto's server on 127.0.0.1 with requests handled one at a time.

moto evaluates DynamoDB condition expressions and transactions without any lock, so two
concurrent requests can both pass a condition that only one of them should (DynamoDB itself
serializes writes to an item). Concurrency tests of the lease broker need DynamoDB's
behaviour, so this wrapper takes one process-wide lock around every request while keeping
the threaded server (clients may still hold many keep-alive connections).

Usage: python3 scripts/lib/moto_server.py PORT
"""

import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: moto_server.py PORT")
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            # Materialize the body inside the lock: the response is computed lazily otherwise.
            return list(app(environ, start_response))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple("127.0.0.1", port, serialized, threaded=True)


if __name__ == "__main__":
    main()
