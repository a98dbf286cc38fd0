#!/usr/bin/env bash
# Deploy the order service to LocalStack with the SAM CLI, seed the stack's table, and print the
# API base URL as the last line of stdout (everything else goes to stderr). Start LocalStack
# first:
#   docker compose -f localstack/docker-compose.yml up -d --wait
#   localstack/deploy.sh
#   cargo xtask invoke --all --via-http "<the URL>"   # or: cargo xtask loadtest smoke --base-url "<the URL>"
#
# What: the REST variant of template.yaml (LocalStack's free tier serves REST APIs), written
# here by `cargo xtask template --rest` unless TEMPLATE names another (e.g. the HTTP API of
# `cargo xtask template --emulator`, where the emulator has API Gateway v2).
#
# One key: the stack verifies tokens (AuthMode=jwt) with the development key in
# .local/dev-jwt-secret, the key `cargo xtask token`, `invoke` and the k6 scenarios sign with;
# it is created here the way `cargo xtask install` creates it when it is missing.
#
# How, and why not plain `sam deploy`: `sam build` (the host's architecture, samconfig
# [localstack], into .aws-sam/build-local) or the bootstraps of BOOTSTRAP_DIR; `sam package` puts
# the code into the emulator's S3; the SAM transform runs here with this deploy's parameter
# values (localstack/sam_translate.py, the translator CloudFormation runs), so nothing depends
# on the emulator applying the transform with them (MiniStack's applies it with the Defaults,
# which keeps CodeDeploy in); `sam deploy` then deploys the plain CloudFormation. The same
# script deploys to MiniStack (LOCALSTACK_ENDPOINT of `cargo xtask emulator up`,
# EMULATOR_ENDPOINT=http://127.0.0.1:4566, BOOTSTRAP_DIR of host binaries), which is how it is
# exercised without Docker.
#
# Env (all optional):
#   LOCALSTACK_ENDPOINT  http://127.0.0.1:4566: where this script reaches the emulator
#   EMULATOR_ENDPOINT    http://localhost.localstack.cloud:4566: where the functions reach it
#                        (LocalStack's name for itself inside Lambda containers)
#   STACK_NAME           order-service
#   TEMPLATE             .local/template-rest.yaml (written by `cargo xtask template --rest`)
#   BOOTSTRAP_DIR        deploy <dir>/<function>/bootstrap (x86_64 Linux) instead of `sam build`
#   SKIP_BUILD=1         deploy the last `sam build` (.aws-sam/build-local)
#   SEED                 auto: seed an empty table, leave a seeded one | wipe: reseed | skip
#   RUNBOOK_BASE_URL     http://127.0.0.1/runbooks (emulators raise no alarms: no metrics there)
#   PARAMETER_OVERRIDES  more "Key=Value ..." template parameters
#   SAM_VENV             .local/sam-venv (the pinned SAM CLI of localstack/requirements-sam.txt)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
endpoint="${LOCALSTACK_ENDPOINT:-http://127.0.0.1:4566}"
emulator_endpoint="${EMULATOR_ENDPOINT:-http://localhost.localstack.cloud:4566}"
stack="${STACK_NAME:-order-service}"
seed="${SEED:-auto}"
work="$repo/.local/localstack"

case "$seed" in
  auto | wipe | skip) ;;
  *)
    echo "SEED must be auto, wipe or skip (got $seed)" >&2
    exit 2
    ;;
esac
if ! curl -sf "$endpoint/_localstack/health" >/dev/null; then
  echo "nothing answers on $endpoint/_localstack/health: docker compose -f localstack/docker-compose.yml up -d --wait" >&2
  if [[ -z "${LOCALSTACK_AUTH_TOKEN:-}" ]]; then
    echo "note: LOCALSTACK_AUTH_TOKEN is unset; current LocalStack images need it to start" >&2
  fi
  exit 1
fi

# The development key, as `cargo xtask install` makes it: 48 letters and digits.
secret_file="$repo/.local/dev-jwt-secret"
secret="$(tr -d '[:space:]' <"$secret_file" 2>/dev/null || true)"
if ((${#secret} < 32)); then
  mkdir -p "$repo/.local"
  secret="$(python3 -c 'import secrets, string
alphabet = string.ascii_letters + string.digits
print("".join(secrets.choice(alphabet) for _ in range(48)), end="")')"
  (umask 077 && printf '%s' "$secret" >"$secret_file")
  echo "created the development key $secret_file" >&2
fi

# shellcheck source=localstack/venv.sh
source "$here/venv.sh"
ensure_sam_venv
sam=("$sam_venv/bin/sam")
tools=("$sam_venv/bin/python" "$here/localstack_tools.py")
mkdir -p "$work"
cd "$repo"
template="${TEMPLATE:-$(cargo --quiet xtask template --rest)}"

if [[ -n "${BOOTSTRAP_DIR:-}" ]]; then
  build_dir="$work/build"
  echo "using the bootstraps in $BOOTSTRAP_DIR" >&2
  "${tools[@]}" build-template "$template" "$BOOTSTRAP_DIR" "$build_dir" >&2
elif [[ "${SKIP_BUILD:-0}" == "1" ]]; then
  build_dir="$repo/.aws-sam/build-local"
else
  build_dir="$repo/.aws-sam/build-local"
  command -v cargo-lambda >/dev/null || [[ -x "$repo/.local/venv/bin/cargo-lambda" ]] || {
    echo "cargo-lambda is needed by sam build (cargo xtask install)" >&2
    exit 1
  }
  # rust-cargolambda: `cargo lambda build --release` per function, for the variant's (the
  # host's) architecture; compose sets LAMBDA_IGNORE_ARCHITECTURE=1. A build directory of its
  # own keeps a later `sam deploy` to AWS from picking up these binaries. `--base-dir` points
  # `CodeUri: .` at the workspace, as the variant lives in .local/.
  PATH="$repo/.local/venv/bin:$PATH" "${sam[@]}" build --config-env localstack \
    --config-file "$repo/samconfig.toml" -t "$template" --base-dir "$repo" \
    --build-dir "$build_dir" >&2
fi
if [[ ! -f "$build_dir/template.yaml" ]]; then
  echo "no build in $build_dir: drop SKIP_BUILD or set BOOTSTRAP_DIR" >&2
  exit 1
fi

# Every AWS client below (SAM CLI, boto3, the xtask's SDK) honours AWS_ENDPOINT_URL.
export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1

# The key's fingerprint moves the functions' `live` alias when the key changes, and reveals
# nothing of it (the template's AuthJwtSecretFingerprint).
fingerprint="$(printf '%s' "$secret" | sha256sum | cut -c1-12)"
params=(
  AuthMode=jwt
  AuthIssuer=order-service-local
  AuthAudience=order-service
  "AuthJwtSecret=$secret"
  "AuthJwtSecretFingerprint=$fingerprint"
  "RunbookBaseUrl=${RUNBOOK_BASE_URL:-http://127.0.0.1/runbooks}"
  AlarmEmail=none
  CanaryDeployments=false
  DeletionProtection=false
  LogRetentionDays=1
  "EmulatorEndpoint=$emulator_endpoint"
)
# Word splitting is the point: "Key=Value Key2=Value2".
# shellcheck disable=SC2206
params+=(${PARAMETER_OVERRIDES:-})

"${sam[@]}" package --template-file "$build_dir/template.yaml" \
  --output-template-file "$work/packaged.yaml" --resolve-s3 --s3-prefix "$stack" \
  --region us-east-1 --no-progressbar >&2
"$sam_venv/bin/python" "$here/sam_translate.py" "$work/packaged.yaml" \
  --out "$work/translated.json" "${params[@]}"
# --parameter-overrides replaces samconfig's list as a whole (its AuthJwtSecret included).
"${sam[@]}" deploy --template-file "$work/translated.json" --stack-name "$stack" \
  --config-env localstack --config-file "$repo/samconfig.toml" \
  --parameter-overrides "${params[@]}" --no-progressbar >&2

outputs="$("${tools[@]}" outputs "$stack")"
output() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$outputs" "$1"; }
api_id="$(output ApiId)"
table="$(output TableName)"
base_url="$endpoint/_aws/execute-api/$api_id/v1"

case "$seed" in
  skip) echo "not seeding $table (SEED=skip)" >&2 ;;
  wipe) cargo xtask seed --endpoint "$endpoint" --table "$table" --wipe >&2 ;;
  auto)
    if [[ "$("${tools[@]}" item-count "$table")" == "0" ]]; then
      cargo xtask seed --endpoint "$endpoint" --table "$table" >&2
    else
      echo "$table already holds data: left as it is (SEED=wipe reseeds it)" >&2
    fi
    ;;
esac

echo "Lambda limits (1 CPU, 256 MB): localstack/limit-lambdas.sh --watch, in another terminal" >&2
echo "try: curl -s -H \"Authorization: Bearer \$(cargo xtask token user-1)\" $base_url/users/user-1/orders" >&2
echo "$base_url"
