#!/usr/bin/env bash
# Give the Lambda containers LocalStack started the function's limits: 256 MB (the template's
# MemorySize, swap included) and 1 CPU, with `docker update`.
#
#   localstack/limit-lambdas.sh           # once, e.g. after the first requests of a run
#   localstack/limit-lambdas.sh --watch   # every 2 s until Ctrl-C (containers that scale out)
#
# Why not LAMBDA_DOCKER_FLAGS: LocalStack's Docker client reads only --add-host, -e/--env,
# --env-file, --compose-env-file, -l/--label, --network, --platform, --privileged,
# -p/--publish, --ulimit, -u/--user, -v/--volume and --dns from it, and refuses anything else
# ("Unsupported flag by this Docker client"), --cpus and --memory included, which would fail
# every invocation; nor has it a setting of its own for them. The containers live
# LAMBDA_KEEPALIVE_MS (10 minutes in docker-compose.yml) after their last request, so a
# container limited once stays limited for the rest of a run. On AWS a 256 MB function gets
# about 0.15 vCPU (CPU is allotted in proportion to memory), so 1 CPU is generous.
#
# Env: LAMBDA_CPUS (1), LAMBDA_MEMORY (256m), LAMBDA_CONTAINER_PREFIX
# (order-service-localstack-lambda-: LocalStack names them <its container>-lambda-<function>-<id>).
set -euo pipefail

cpus="${LAMBDA_CPUS:-1}"
memory="${LAMBDA_MEMORY:-256m}"
prefix="${LAMBDA_CONTAINER_PREFIX:-order-service-localstack-lambda-}"
declare -A limited=()

limit_all() {
  local id name
  while read -r id name; do
    [[ -n "$id" && "$name" == "$prefix"* && -z "${limited[$id]:-}" ]] || continue
    docker update --cpus "$cpus" --memory "$memory" --memory-swap "$memory" "$id" >/dev/null
    limited[$id]=1
    echo "limited $name to $cpus CPU and $memory" >&2
  done < <(docker ps --filter "name=$prefix" --format '{{.ID}} {{.Names}}')
}

limit_all
if [[ "${1:-}" == "--watch" ]]; then
  while sleep 2; do
    limit_all
  done
fi
if ((${#limited[@]} == 0)); then
  echo "no running container named $prefix*: send a request first" >&2
fi
