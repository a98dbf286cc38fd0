#!/usr/bin/env bash
# Deploy the order service to MiniStack (https://pypi.org/project/ministack/), a LocalStack-
# compatible emulator that runs as a plain process on 127.0.0.1 and runs provided.al2023
# functions as local processes. No Docker.
#
#   BOOTSTRAP_DIR=target/lambda localstack/ministack-deploy.sh [up|start|deploy|url|stop]
#
# What it deploys is TEMPLATE, by default the MiniStack variant of template.yaml (the HTTP API
# without its authorizer, AuthMode=jwt), written here by `cargo xtask template --emulator` when
# TEMPLATE is unset (`cargo xtask emulator up` sets it).
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
repo="$(cd "$here/.." && pwd)"
venv="${EMULATOR_VENV:-$repo/.local/emulator-venv}"
ensure_venv "$venv" "$here/requirements-emulator.txt" python
case "${1:-up}" in
  up | deploy)
    if [[ -z "${TEMPLATE:-}" ]]; then
      TEMPLATE="$(cd "$repo" && cargo --quiet xtask template --emulator)"
      export TEMPLATE
    fi
    ;;
esac

exec "$venv/bin/python" "$here/emulator.py" "${1:-up}"
