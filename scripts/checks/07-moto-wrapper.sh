#!/usr/bin/env bash
# The moto wrapper (scripts/lib/moto_server.py) passes DynamoDB attribute values through
# without moto's model-driven serializer: check that the answers stay the same
# JSON (scripts/checks/moto_wrapper_test.py). Its server keeps connections open: check that
# one connection serves many calls without mixing them up (scripts/checks/moto_keepalive_test.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python3 "$ROOT/scripts/checks/moto_wrapper_test.py"
python3 "$ROOT/scripts/checks/moto_keepalive_test.py"
