#!/usr/bin/env bash
# Deploy template.yaml to MiniStack (https://pypi.org/project/ministack/), a LocalStack-
# compatible emulator that runs as a plain process on 127.0.0.1 and runs provided.al2023
# functions as local processes. No Docker.
#
#   BOOTSTRAP_DIR=target/lambda localstack/ministack-deploy.sh [up|start|deploy|url|stop]
#
# BOOTSTRAP_DIR holds <function-name>/bootstrap built for the host (x86_64 Linux), which is
# the layout `cargo lambda build --release` writes to target/lambda. `up` (the default)
# starts MiniStack if nothing answers on 127.0.0.1:${EMULATOR_PORT:-4566}, deploys, and
# prints the API base URL as the last line of stdout; everything else goes to stderr.
# Idempotent: re-running with unchanged binaries changes nothing. Other knobs: the
# docstring of localstack/emulator.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=localstack/venv.sh
source "$here/venv.sh"
venv="${EMULATOR_VENV:-$(cd "$here/.." && pwd)/.local/emulator-venv}"
ensure_venv "$venv" "$here/requirements-emulator.txt" python

exec "$venv/bin/python" "$here/emulator.py" "${1:-up}"
