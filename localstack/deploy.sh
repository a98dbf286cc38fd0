#!/usr/bin/env bash
# Build the four functions and deploy template.yaml to LocalStack with SAM CLI, then print
# the API base URL (last line of stdout). Start LocalStack first:
#   docker compose -f localstack/docker-compose.yml up -d --wait
#
# Env: LOCALSTACK_ENDPOINT (http://127.0.0.1:4566), STACK_NAME (order-service),
#      SKIP_BUILD=1 to deploy the last build, SAM_VENV (.local/sam-venv).
#
# Why SAM CLI here and not for MiniStack: LocalStack applies the SAM transform with the
# deploy's parameter values, so CanaryDeployments=false really removes CodeDeploy (a Pro
# feature there). MiniStack's transform sees only Defaults: localstack/emulator.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
endpoint="${LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}"
stack="${STACK_NAME:-order-service}"
venv="${SAM_VENV:-$repo/.local/sam-venv}"

if [[ -z "${LOCALSTACK_AUTH_TOKEN:-}" ]]; then
  echo "note: LOCALSTACK_AUTH_TOKEN is unset; current LocalStack images need it to start" >&2
fi
if ! curl -sf "$endpoint/_localstack/health" >/dev/null; then
  echo "LocalStack does not answer on $endpoint: docker compose -f localstack/docker-compose.yml up -d --wait" >&2
  exit 1
fi

if [[ ! -x "$venv/bin/sam" ]]; then
  echo "installing aws-sam-cli into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==1.170.0" >&2
fi
command -v cargo-lambda >/dev/null || [[ -x "$repo/.local/venv/bin/cargo-lambda" ]] || {
  echo "cargo-lambda is needed by sam build (pip install cargo-lambda)" >&2
  exit 1
}
export PATH="$repo/.local/venv/bin:$venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0

cd "$repo"
if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
  # rust-cargolambda: `cargo lambda build --release` per function, for Architecture=x86_64
  # (samconfig [localstack.build]); compose sets LAMBDA_IGNORE_ARCHITECTURE=1.
  sam build --config-env localstack >&2
fi

# The SAM CLI's boto3 honours AWS_ENDPOINT_URL for every service it calls (S3, CFN).
export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
sam deploy --config-env localstack --stack-name "$stack" --no-progressbar >&2

api_id="$(sam list stack-outputs --stack-name "$stack" --output json \
  | python3 -c 'import json,sys; print({o["OutputKey"]: o["OutputValue"] for o in json.load(sys.stdin)}["ApiId"])')"
echo "$endpoint/_aws/execute-api/$api_id/v1"
