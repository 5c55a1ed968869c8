#!/usr/bin/env bash
# Structure limits of the Rust code (scripts/checks/structure.py): no file over 1,000 lines, no
# function over 150 lines outside test code, no import cycle between sibling modules.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec python3 "$ROOT/scripts/checks/structure.py" "$ROOT"
