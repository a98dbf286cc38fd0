#!/usr/bin/env bash
# The project's pinned SAM CLI (localstack/requirements-sam.txt), installed on first use into
# .local/sam-venv. Run it like `sam`:
#
#   localstack/sam.sh build
#   localstack/sam.sh validate --lint
#   localstack/sam.sh local start-api --env-vars .local/sam-local/env.json
set -euo pipefail

# shellcheck source=localstack/venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
ensure_sam_venv
exec "$sam_venv/bin/sam" "$@"
