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
#   4. the emulator variants (`cargo xtask template --rest` and `--emulator`, in .local/): sam
#      validate --lint and SAM's translator on each (with the parameters the deploy scripts
#      pass); then, on the REST one, `sam local start-api`'s own route reading (ApiProvider)
#      and request handling (LocalApigwService, its Flask app with a recording stand-in for the
#      Docker runner): exactly the router table's routes of Cargo.toml, each to its function,
#      as payload 1.0 events shaped like events/v1/, no authorizer.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=localstack/venv.sh
source "$here/venv.sh"
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

echo "cargo xtask template --rest / --emulator; sam validate --lint and SAM-translate each; the REST routes as sam local serves them" >&2
# A fresh clone has no variants yet: the xtask writes them (and prints their paths).
emulator_variant="$(cargo --quiet xtask template --emulator)"
variant="$(cargo --quiet xtask template --rest)"
for template in "$emulator_variant" "$variant"; do
  AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline AWS_DEFAULT_REGION=us-east-1 \
    AWS_REGION=us-east-1 "$sam_venv/bin/sam" validate --lint --template "$template" >&2
  "$sam_venv/bin/python" "$here/sam_translate.py" "$template" AuthJwtSecret=check-0123456789abcdef0123456789abcdef \
    AuthJwtSecretFingerprint=0123456789ab EmulatorEndpoint=http://127.0.0.1:4566 \
    RunbookBaseUrl=http://127.0.0.1/runbooks AlarmEmail=none CanaryDeployments=false
done
router="$(cargo metadata --no-deps --offline --format-version 1)"
"$sam_venv/bin/python" - "$variant" "$router" <<'PYTHON'
"""sam local start-api's view of the variant, from the SAM CLI's own code, without Docker."""
import io
import json
import re
import sys
from pathlib import Path

from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.local.apigw.local_apigw_service import LocalApigwService

variant, metadata = sys.argv[1], json.loads(sys.argv[2])["metadata"]
router = {
    (entry["method"].upper(), path, entry["function"])
    for path, entries in metadata["lambda"]["watch"]["router"].items()
    for entry in entries
}
stacks, _ = SamLocalStackProvider.get_stacks(variant)
functions = {function.name: function for function in SamFunctionProvider(stacks).get_all()}
problems = []
binaries = {}
for name, function in functions.items():
    meta = function.metadata or {}
    if meta.get("BuildMethod") != "rust-cargolambda":
        problems.append(f"{name}: BuildMethod {meta.get('BuildMethod')!r}, sam build needs rust-cargolambda")
    binaries[name] = meta.get("BuildProperties", {}).get("Binary")
api = ApiProvider(stacks).api
served = set()
for route in api.routes:
    if route.event_type != "Api" or route.authorizer_name or route.authorizer_object:
        problems.append(f"{route.methods} {route.path}: {route.event_type}, authorizer {route.authorizer_name}")
    served |= {(method, route.path, binaries.get(route.function_name)) for method in route.methods}
if served != router:
    problems.append(f"sam local serves {sorted(served)}, the router table {sorted(router)}")


class Recorder:
    """Stands in for the Docker runner: records the invocation, answers 200."""

    def __init__(self):
        self.calls = []

    def is_debugging(self):
        return False

    def invoke(self, name, event, stdout, **_):
        self.calls.append((name, json.loads(event)))
        stdout.write_str(json.dumps({"statusCode": 200, "headers": {}, "body": "{}"}))


runner = Recorder()
service = LocalApigwService(
    api=api, lambda_runner=runner, static_dir=None, port=3000, host="127.0.0.1", stderr=io.StringIO()
)
service.create()
client = service._app.test_client()  # noqa: SLF001 - the app start-api would serve
fixtures = [json.loads(path.read_text()) for path in Path("events/v1").glob("*.json")]
payload_v1 = set.intersection(*(set(fixture) for fixture in fixtures))
by_binary = {binary: name for name, binary in binaries.items()}
for method, path, function in sorted(router):
    url = re.sub(r"\{(\w+)\}", lambda match: f"{match.group(1)}-1", path)
    answer = client.open(url, method=method, headers={"Authorization": "Bearer check"}, data="{}")
    if answer.status_code != 200 or not runner.calls:
        problems.append(f"{method} {url}: {answer.status_code}, no invocation")
        continue
    name, event = runner.calls.pop()
    want = {m: f"{m}-1" for m in re.findall(r"\{(\w+)\}", path)}
    if name != by_binary.get(function):
        problems.append(f"{method} {url}: invoked {name}, not {by_binary.get(function)} ({function})")
    if (event["httpMethod"], event["resource"], event["pathParameters"]) != (method, path, want):
        problems.append(f"{method} {url}: event {event['httpMethod']} {event['resource']} {event['pathParameters']}")
    if event["requestContext"].get("stage") != "v1" or event["headers"].get("Authorization") != "Bearer check":
        problems.append(f"{method} {url}: stage {event['requestContext'].get('stage')}, headers {event['headers']}")
    if not payload_v1 <= set(event):
        problems.append(f"{method} {url}: the event lacks {sorted(payload_v1 - set(event))} of events/v1/")
    print(f"  {method} {path} -> {name} ({function})", file=sys.stderr)
if client.delete("/users/user-1/orders").status_code == 200 or runner.calls:
    problems.append("DELETE /users/user-1/orders reached a function")
for problem in problems:
    print(f"sam local variant: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PYTHON
echo "localstack/check.sh: ok" >&2
