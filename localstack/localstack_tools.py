#!/usr/bin/env python3
"""Helpers of localstack/deploy.sh and localstack/check.sh. Runs in the SAM CLI's venv
(.local/sam-venv: boto3, PyYAML and the SAM CLI itself are there). emulator.py imports
`prebuilt_bootstrap` and `is_elf` from here, so top-level imports stay in the standard library.

    localstack_tools.py build-template TEMPLATE BOOTSTRAP_DIR OUT_DIR
        OUT_DIR/template.yaml + OUT_DIR/<LogicalId>/bootstrap, the layout `sam build` writes,
        from TEMPLATE and prebuilt bootstraps (BOOTSTRAP_DIR/<function>/bootstrap), for
        `sam package`.
    localstack_tools.py outputs STACK
        The stack's outputs as one JSON object (AWS_ENDPOINT_URL picks the emulator).
    localstack_tools.py item-count TABLE
        0 when the table is empty, else 1 (one item is enough to know).
    localstack_tools.py check
        Offline checks of what Docker would run: docker-compose.yml parsed and held to what its
        comments promise, and `sam local`'s environment for every function computed by the SAM
        CLI's own code from events/sam-local/env.json. Exit 1 with every problem listed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "template.yaml"
COMPOSE = REPO / "localstack" / "docker-compose.yml"
ENV_JSON = REPO / "events" / "sam-local" / "env.json"
# The local stack's table (lab/src/stack.rs TABLE_NAME) and DynamoDB Local's port there.
LOCAL_TABLE = "orders-local"
DYNAMODB_LOCAL_PORT = 8000


def functions(template: dict) -> dict[str, str]:
    """Logical id -> cargo binary of every rust-cargolambda function."""
    found = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = (resource.get("Metadata") or {}).get("BuildProperties", {}).get("Binary")
        if binary:
            found[logical_id] = binary
    return found


def prebuilt_bootstrap(bootstrap_dir: str | Path, binary: str) -> Path:
    """BOOTSTRAP_DIR/<binary>/bootstrap, where both deploy paths take prebuilt binaries from;
    exits when it is missing."""
    path = Path(bootstrap_dir) / binary / "bootstrap"
    if not path.is_file():
        sys.exit(f"missing {path}")
    return path


def is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def build_template(template_path: str, bootstrap_dir: str, out_dir: str) -> None:
    from samcli.yamlhelper import yaml_dump, yaml_parse

    template = yaml_parse(Path(template_path).read_text())
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    built = functions(template)
    for logical_id, binary in built.items():
        source = prebuilt_bootstrap(bootstrap_dir, binary)
        if not is_elf(source):
            sys.exit(f"{source} is not an ELF binary")
        (out / logical_id).mkdir()
        shutil.copy2(source, out / logical_id / "bootstrap")
        resource = template["Resources"][logical_id]
        resource["Properties"]["CodeUri"] = logical_id
        resource.pop("Metadata", None)
    (out / "template.yaml").write_text(yaml_dump(template))
    print(f"{out / 'template.yaml'}: {len(built)} functions")


def aws_client(service: str):
    import boto3

    # AWS_ENDPOINT_URL (set by deploy.sh) points every client at the emulator.
    return boto3.client(service, region_name=os.environ.get("AWS_REGION", "us-east-1"))


def outputs(stack: str) -> None:
    described = aws_client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    print(json.dumps({o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}))


def item_count(table: str) -> None:
    answer = aws_client("dynamodb").scan(TableName=table, Limit=1, Select="COUNT")
    print(1 if answer.get("Count", 0) or answer.get("LastEvaluatedKey") else 0)


# ------------------------------------------------------------------------------- check

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
LOCALSTACK_DOCKER_FLAGS = {
    "--add-host", "--env", "-e", "--env-file", "--compose-env-file", "--label", "-l",
    "--network", "--platform", "--privileged", "--publish", "-p", "--ulimit", "--user", "-u",
    "--volume", "-v", "--dns",
}
COMPOSE_TOP_LEVEL = {"name", "services", "networks", "volumes", "configs", "secrets", "include"}
COMPOSE_SERVICE_KEYS = {
    "image", "container_name", "ports", "environment", "cpus", "mem_limit", "volumes",
    "networks", "healthcheck", "restart", "depends_on", "command", "entrypoint", "labels",
}


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default}, as `docker compose config`."""
    if isinstance(value, str):
        return INTERPOLATION.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


def check_compose(problems: list[str], memory_size: int) -> None:
    import yaml

    raw = yaml.safe_load(COMPOSE.read_text())
    compose = interpolate(raw, {})
    unknown = set(compose) - COMPOSE_TOP_LEVEL
    if unknown:
        problems.append(f"compose: unknown top-level keys {sorted(unknown)}")
    service = compose.get("services", {}).get("localstack")
    if not isinstance(service, dict):
        problems.append("compose: no service `localstack`")
        return
    unknown = set(service) - COMPOSE_SERVICE_KEYS
    if unknown:
        problems.append(f"compose: unknown service keys {sorted(unknown)}")
    image = service.get("image", "")
    if not re.fullmatch(r"localstack/localstack:(\d{4}\.\d{2}\.\d+|\d+\.\d+\.\d+)", image):
        problems.append(f"compose: image {image!r} is not a pinned LocalStack release")
    for port in service.get("ports", []):
        if not str(port).startswith("127.0.0.1:"):
            problems.append(f"compose: port {port!r} is not bound to loopback")
    environment = service.get("environment", {})
    if not isinstance(environment, dict):
        problems.append("compose: environment must be a mapping")
        environment = {}
    for key, value in environment.items():
        if not isinstance(value, str):
            problems.append(f"compose: environment {key} is not a string ({value!r})")
    # LocalStack's Docker client parses these with argparse and refuses any other flag
    # (localstack-core utils/container_utils/container_client.py, parse_additional_flags).
    for flag in shlex.split(environment.get("LAMBDA_DOCKER_FLAGS", "")):
        name = flag.split("=", 1)[0]
        if name.startswith("-") and name not in LOCALSTACK_DOCKER_FLAGS:
            problems.append(f"compose: LocalStack refuses {name} in LAMBDA_DOCKER_FLAGS")
    script = (REPO / "localstack" / "limit-lambdas.sh").read_text()
    want_memory = f'memory="${{LAMBDA_MEMORY:-{memory_size}m}}"'
    if want_memory not in script:
        problems.append(f"limit-lambdas.sh: the default memory is not MemorySize ({want_memory})")
    prefix = f'prefix="${{LAMBDA_CONTAINER_PREFIX:-{service.get("container_name")}-lambda-}}"'
    if prefix not in script:
        problems.append(f"limit-lambdas.sh: the container prefix is not {prefix}")
    if environment.get("LAMBDA_IGNORE_ARCHITECTURE") != "1":
        problems.append("compose: LAMBDA_IGNORE_ARCHITECTURE must be 1 (x86_64 builds)")
    network = compose.get("networks", {}).get("default", {}).get("name")
    if environment.get("LAMBDA_DOCKER_NETWORK") != network:
        problems.append("compose: LAMBDA_DOCKER_NETWORK is not the compose network")
    if not any(str(volume).startswith("/var/run/docker.sock:") for volume in service.get("volumes", [])):
        problems.append("compose: the Docker socket is not mounted (Lambda needs it)")
    for key in ("cpus", "mem_limit"):
        if not str(service.get(key, "")).strip():
            problems.append(f"compose: {key} is empty after interpolation")
    health = " ".join(service.get("healthcheck", {}).get("test", []))
    if "/_localstack/health" not in health:
        problems.append("compose: the healthcheck does not ask /_localstack/health")


def check_sam_local_env(problems: list[str]) -> None:
    """The environment `sam local invoke/start-api --env-vars <rendered env.json>` gives each
    function, computed by the SAM CLI's own code (it only overrides variables the template
    declares, and takes AWS_* credentials from the shell, not from env.json)."""
    from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    secret = "0123456789abcdef0123456789abcdef-check"
    env_values = json.loads(ENV_JSON.read_text().replace("{{jwt-secret}}", secret))
    # What the README tells users to export: DynamoDB Local keeps one database per access key
    # and region, and the xtask seeds it as key "local" in us-east-1.
    os.environ.update(
        AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    stacks, _ = SamLocalStackProvider.get_stacks(str(TEMPLATE))
    provider = SamFunctionProvider(stacks)
    runner = LocalLambdaRunner(None, provider, str(REPO), str(REPO), env_vars_values=env_values)
    seen = 0
    for function in provider.get_all():
        seen += 1
        env = runner._make_env_vars(function).resolve()  # noqa: SLF001 - SAM's own resolution
        want = {
            "TABLE_NAME": LOCAL_TABLE,
            "AUTH_MODE": "jwt",
            "AUTH_JWT_SECRET": secret,
            "AUTH_ISSUER": "order-service-local",
            "AUTH_AUDIENCE": "order-service",
            "AWS_ENDPOINT_URL": f"http://host.docker.internal:{DYNAMODB_LOCAL_PORT}",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_REGION": "us-east-1",
        }
        for key, value in want.items():
            if env.get(key) != value:
                problems.append(f"sam local {function.name}: {key}={env.get(key)!r}, want {value!r}")
        for key, value in env.items():
            if "Fn::" in value or value.startswith("{"):
                problems.append(f"sam local {function.name}: {key} is unresolved ({value})")
    if seen == 0:
        problems.append("sam local: template.yaml has no functions")


def check() -> None:
    from samtranslator.yaml_helper import yaml_parse

    problems: list[str] = []
    template = yaml_parse(TEMPLATE.read_text())
    memory_size = int(template["Globals"]["Function"]["MemorySize"])
    check_compose(problems, memory_size)
    check_sam_local_env(problems)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("docker-compose.yml and sam local's env.json: ok", file=sys.stderr)


def main(argv: list[str]) -> None:
    command, *args = argv or ["help"]
    if command == "build-template" and len(args) == 3:
        build_template(*args)
    elif command == "outputs" and len(args) == 1:
        outputs(*args)
    elif command == "item-count" and len(args) == 1:
        item_count(*args)
    elif command == "check" and not args:
        check()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
