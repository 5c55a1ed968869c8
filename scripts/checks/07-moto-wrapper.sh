#!/usr/bin/env bash
# The moto wrapper (scripts/lib/moto_server.py) passes DynamoDB attribute values through
# without moto's model-driven serializer: check that the answers stay the same
# JSON (scripts/checks/moto_wrapper_test.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec python3 "$ROOT/scripts/checks/moto_wrapper_test.py"
