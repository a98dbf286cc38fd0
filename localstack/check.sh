#!/usr/bin/env bash
# Offline checks of the Docker paths (LocalStack, `sam local`), which this project's machines
# cannot run: the CI step "sam validate --lint ..." of `cargo xtask test`.
#
#   1. sam validate --lint on template.yaml (the pinned SAM CLI; no AWS account or network:
#      dummy credentials and a region are all it asks for);
#   2. bash -n and shellcheck on every script here;
#   3. localstack_tools.py check: docker-compose.yml parsed and held to what it promises, and
#      the environment `sam local` gives each function from events/sam-local/env.json,
#      computed by the SAM CLI's own code.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=localstack/sam-venv.sh
source "$here/sam-venv.sh"
ensure_sam_venv
cd "$repo"

echo "sam validate --lint --template template.yaml" >&2
AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_DEFAULT_REGION=us-east-1 \
  AWS_REGION=us-east-1 "$sam_venv/bin/sam" validate --lint --template template.yaml >&2

scripts=("$here"/*.sh)
echo "bash -n and shellcheck: ${scripts[*]#"$repo/"}" >&2
for script in "${scripts[@]}"; do
  bash -n "$script"
done
"$sam_venv/bin/shellcheck" --external-sources --source-path="$repo" "${scripts[@]}"

"$sam_venv/bin/python" "$here/localstack_tools.py" check
echo "localstack/check.sh: ok" >&2
