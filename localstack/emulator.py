#!/usr/bin/env python3
"""Run the order service on MiniStack, a LocalStack-compatible emulator that runs as a plain
process and runs provided.al2023 functions as local processes.

    emulator.py start     start MiniStack on 127.0.0.1:$EMULATOR_PORT (no-op if it answers)
    emulator.py deploy    package $BOOTSTRAP_DIR/<function>/bootstrap, deploy $TEMPLATE and
                          print the API base URL as the last line of stdout
    emulator.py up        start + deploy
    emulator.py url       print the base URL of the deployed stack
    emulator.py stop      stop the MiniStack this script started (by its recorded pid)

$TEMPLATE is a variant of template.yaml that `cargo xtask template` writes: --emulator (the
default, .local/template-emulator.yaml: the HTTP API without its authorizer, AuthMode=jwt) or
--rest (a REST API). The recipe, and why each step is there, is measured in ops/deploy-notes.md:
  * MiniStack's own SAM transform ignores the parameter values of CreateStack (it only
    sees Defaults), so DeploymentPreference.Enabled would stay "true" and the stack would
    fail on AWS::CodeDeploy::*. This script therefore runs the SAM translator itself with
    the real parameter values and sends plain CloudFormation.
  * MiniStack's CloudFormation creates an AWS::ApiGatewayV2::Api without reading its OpenAPI
    Body, where SAM puts an HTTP API's routes; AWS imports it. This script imports it the same
    way (import_http_api_bodies): every operation becomes an Integration and a Route, every
    JWT security scheme an Authorizer.
  * The code goes to the emulator's S3 as one zip per function, named by its SHA-256, so
    re-deploying unchanged binaries is a no-op and a changed one publishes a new version.
  * The translated template goes there too and CloudFormation reads it by TemplateURL, as
    `sam deploy` does on AWS: it is larger than the 51,200 bytes a TemplateBody may hold.
  * Functions are local processes: they need host (x86_64) binaries, not arm64.

Environment (all optional except BOOTSTRAP_DIR for deploy/up):
  BOOTSTRAP_DIR         directory holding <function-name>/bootstrap (x86_64 Linux builds)
  TEMPLATE              <repo>/.local/template-emulator.yaml
  EMULATOR_PORT         4566
  STACK_NAME            order-service
  ARTIFACT_BUCKET       order-service-artifacts
  AUTH_MODE             jwt           (apigateway, with TEMPLATE=template.yaml, needs a pool:
                                       PARAMETER_OVERRIDES="CreateUserPool=true" makes one)
  AUTH_JWT_SECRET       local-development-secret-not-for-production
  AUTH_ISSUER           order-service-local
  AUTH_AUDIENCE         order-service
  LOG_LEVEL             info
  FAULT_INJECTION_RATE  0
  RESERVED_CONCURRENCY  -1            (unreserved, the template's default; MiniStack enforces N)
  RUNBOOK_BASE_URL      http://127.0.0.1/runbooks (emulators raise no alarms: no metrics there)
  PARAMETER_OVERRIDES   extra "Key=Value Key2=Value2" template parameters
  EMULATOR_STATE_DIR    <repo>/.local/emulator (pid file and MiniStack log)
  MINISTACK_BIN         ministack found next to this interpreter, else on PATH
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace

from localstack_tools import is_elf, prebuilt_bootstrap

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
REGION = "us-east-1"
STAGE = "v1"
# Function logical id in template.yaml -> cargo binary / directory under BOOTSTRAP_DIR.
FUNCTIONS = {
    "CreateOrderFunction": "create-order",
    "PayOrderFunction": "pay-order",
    "CancelOrderFunction": "cancel-order",
    "RefundOrderFunction": "refund-order",
    "GetOrderFunction": "get-order",
}


# The emulator is on loopback: never send its traffic through a proxy from the environment.
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "127.0.0.1", "localhost"]))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def env(name: str, default: str) -> str:
    value = os.environ.get(name, "")
    return value if value else default


def port() -> int:
    return int(env("EMULATOR_PORT", "4566"))


def endpoint() -> str:
    return f"http://{HOST}:{port()}"


def state_dir() -> Path:
    path = Path(env("EMULATOR_STATE_DIR", str(REPO / ".local" / "emulator")))
    path.mkdir(parents=True, exist_ok=True)
    return path


def healthy(timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint()}/_ministack/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def ministack_bin() -> str:
    explicit = os.environ.get("MINISTACK_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "ministack"
    if beside.exists():
        return str(beside)
    found = shutil.which("ministack")
    if not found:
        sys.exit("ministack not found: run localstack/ministack-deploy.sh, or set MINISTACK_BIN")
    return found


def start() -> None:
    if healthy():
        log(f"MiniStack already answers on {endpoint()}")
        return
    state = state_dir()
    logfile = open(state / "ministack.log", "ab")  # noqa: SIM115 - handed to the child
    # A clean environment: functions run as MiniStack's child processes and inherit its
    # environment (template variables are laid on top), so nothing of the caller's shell
    # (AWS_PROFILE, RUST_LOG, ...) may leak into them. BIND_HOST keeps it on loopback.
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        # Not the caller's HOME: the SDK in the functions would read ~/.aws profiles.
        "HOME": str(state),
        "LANG": "C.UTF-8",
        "TMPDIR": str(state),
        "BIND_HOST": HOST,
        "GATEWAY_PORT": str(port()),
        "LOG_LEVEL": env("MINISTACK_LOG_LEVEL", "INFO"),
        "LAMBDA_EXECUTOR": "local",
        "MINISTACK_REGION": REGION,
    }
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [ministack_bin()],
        env=child_env,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=state,
    )
    (state / "ministack.pid").write_text(str(proc.pid))
    started = time.monotonic()
    while time.monotonic() - started < 60:
        if proc.poll() is not None:
            sys.exit(f"MiniStack exited with {proc.returncode}; see {state / 'ministack.log'}")
        if healthy(0.5):
            log(f"MiniStack {proc.pid} ready on {endpoint()} in {time.monotonic() - started:.1f}s")
            return
        time.sleep(0.1)
    sys.exit(f"MiniStack did not answer on {endpoint()} within 60s")


def stop() -> None:
    pidfile = state_dir() / "ministack.pid"
    if not pidfile.exists():
        log("no MiniStack started by this script")
        return
    pid = int(pidfile.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pidfile.unlink(missing_ok=True)
    log(f"MiniStack {pid} stopped")


def clients():
    import boto3

    kwargs = {
        "endpoint_url": endpoint(),
        "region_name": REGION,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    return boto3.client("s3", **kwargs), boto3.client("cloudformation", **kwargs)


def deterministic_zip(bootstrap: Path) -> bytes:
    """The zip of one bootstrap, byte-identical for identical binaries."""
    buffer = io.BytesIO()
    info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, bootstrap.read_bytes())
    return buffer.getvalue()


def upload_code(s3, bucket: str) -> dict[str, dict[str, str]]:
    root = os.environ.get("BOOTSTRAP_DIR")
    if not root:
        sys.exit("BOOTSTRAP_DIR is not set (expects $BOOTSTRAP_DIR/<function-name>/bootstrap)")
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - any miss means create it
        s3.create_bucket(Bucket=bucket)
    code = {}
    for logical_id, name in FUNCTIONS.items():
        bootstrap = prebuilt_bootstrap(root, name)
        if not is_elf(bootstrap):
            log(f"warning: {bootstrap} is not an ELF binary")
        blob = deterministic_zip(bootstrap)
        key = f"{name}/{hashlib.sha256(blob).hexdigest()[:32]}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=blob)
        code[logical_id] = {"Bucket": bucket, "Key": key}
    return code


def template_path() -> Path:
    path = Path(env("TEMPLATE", str(REPO / ".local" / "template-emulator.yaml")))
    if not path.is_file():
        sys.exit(f"no {path}: write it with `cargo xtask template --emulator` (or set TEMPLATE)")
    return path


def fingerprint(secret: str) -> str:
    """What the template's AuthJwtSecretFingerprint expects: changes with the key, reveals
    nothing of it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def parameters() -> dict[str, str]:
    secret = env("AUTH_JWT_SECRET", "local-development-secret-not-for-production")
    values = {
        "AuthMode": env("AUTH_MODE", "jwt"),
        "AuthJwtSecret": secret,
        "AuthJwtSecretFingerprint": fingerprint(secret),
        "AuthIssuer": env("AUTH_ISSUER", "order-service-local"),
        "AuthAudience": env("AUTH_AUDIENCE", "order-service"),
        "LogLevel": env("LOG_LEVEL", "info"),
        "FaultInjectionRate": env("FAULT_INJECTION_RATE", "0"),
        "ReservedConcurrency": env("RESERVED_CONCURRENCY", "-1"),
        "EmulatorEndpoint": endpoint(),
        "CanaryDeployments": "false",
        "DeletionProtection": "false",
        "LogRetentionDays": "1",
        "RunbookBaseUrl": env("RUNBOOK_BASE_URL", "http://127.0.0.1/runbooks"),
        "AlarmEmail": "none",
    }
    for pair in os.environ.get("PARAMETER_OVERRIDES", "").split():
        key, _, value = pair.partition("=")
        values[key] = value
    if values["AuthMode"] != "jwt":
        values.pop("AuthJwtSecret")
        values.pop("AuthJwtSecretFingerprint")
    return values


def translate(code: dict[str, dict[str, str]], values: dict[str, str]) -> dict:
    os.environ["AWS_DEFAULT_REGION"] = REGION
    # Offline there is no feature-toggle config: every function would log that one is missing.
    logging.getLogger("samtranslator.feature_toggle").setLevel(logging.ERROR)
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(template_path().read_text())
    for logical_id, location in code.items():
        template["Resources"][logical_id]["Properties"]["CodeUri"] = location
    # No managed-policy lookups: the template names its policies explicitly.
    translated = transform(template, dict(values), SimpleNamespace(load=lambda: {}))
    import_http_api_bodies(translated)
    return translated


def import_http_api_bodies(template: dict) -> None:
    """What AWS does with an AWS::ApiGatewayV2::Api's OpenAPI Body and MiniStack 1.5.33 does not
    (its provisioner creates the API and drops the Body): every operation becomes an
    AWS::ApiGatewayV2::Integration and Route, every JWT security scheme an Authorizer, and the
    Api keeps only its name. SAM writes an HTTP API's routes into that Body."""
    resources = template["Resources"]
    for api_id, api in list(resources.items()):
        properties = api.get("Properties", {})
        if api.get("Type") != "AWS::ApiGatewayV2::Api" or "Body" not in properties:
            continue
        body = properties.pop("Body")
        properties.setdefault("Name", body.get("info", {}).get("title", api_id))
        properties.setdefault("ProtocolType", "HTTP")
        authorizers = {}
        for name, scheme in body.get("components", {}).get("securitySchemes", {}).items():
            authorizer = scheme.get("x-amazon-apigateway-authorizer", {})
            if authorizer.get("type") != "jwt":
                sys.exit(f"{api_id}: security scheme {name} is no JWT authorizer")
            jwt = authorizer["jwtConfiguration"]
            authorizers[name] = logical_id = f"{api_id}{name}Authorizer"
            resources[logical_id] = {
                "Type": "AWS::ApiGatewayV2::Authorizer",
                "Properties": {
                    "ApiId": {"Ref": api_id},
                    "Name": name,
                    "AuthorizerType": "JWT",
                    "IdentitySource": [authorizer["identitySource"]],
                    "JwtConfiguration": {"Issuer": jwt["issuer"], "Audience": jwt["audience"]},
                },
            }
        for path, operations in body.get("paths", {}).items():
            if not isinstance(operations, dict):
                sys.exit(f"{api_id}: path {path} is no plain mapping (a condition?)")
            for method, operation in operations.items():
                integration = operation.get("x-amazon-apigateway-integration")
                if not integration:
                    continue
                method = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                key = f"{method} {path}"
                slug = re.sub(r"[^A-Za-z0-9]", "", key.title())
                resources[f"{api_id}{slug}Integration"] = {
                    "Type": "AWS::ApiGatewayV2::Integration",
                    "Properties": {
                        "ApiId": {"Ref": api_id},
                        "IntegrationType": "AWS_PROXY",
                        "IntegrationUri": integration["uri"],
                        "PayloadFormatVersion": integration.get("payloadFormatVersion", "2.0"),
                    },
                }
                route = {
                    "ApiId": {"Ref": api_id},
                    "RouteKey": key,
                    "Target": {"Fn::Sub": f"integrations/${{{api_id}{slug}Integration}}"},
                    "AuthorizationType": "NONE",
                }
                schemes = [name for requirement in operation.get("security", []) for name in requirement]
                if schemes:
                    route["AuthorizationType"] = "JWT"
                    route["AuthorizerId"] = {"Ref": authorizers[schemes[0]]}
                resources[f"{api_id}{slug}Route"] = {
                    "Type": "AWS::ApiGatewayV2::Route",
                    "Properties": route,
                }


def stack_outputs(cfn, stack: str) -> dict[str, str]:
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def base_url(api_id: str) -> str:
    return f"{endpoint()}/_aws/execute-api/{api_id}/{STAGE}"


def deploy() -> None:
    if not healthy():
        sys.exit(f"no emulator answers on {endpoint()}: run `emulator.py start` first")
    stack = env("STACK_NAME", "order-service")
    started = time.monotonic()
    s3, cfn = clients()
    bucket = env("ARTIFACT_BUCKET", "order-service-artifacts")
    code = upload_code(s3, bucket)
    values = parameters()
    # Through S3, as `sam deploy` does: CloudFormation takes at most 51,200 bytes of template
    # inline (TemplateBody) and the translated template is larger; by TemplateURL 1 MB. The key
    # is the body's hash, so an unchanged template is the same object.
    body = json.dumps(translate(code, values), separators=(",", ":")).encode()
    key = f"templates/{stack}-{hashlib.sha256(body).hexdigest()[:32]}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    args = {
        "StackName": stack,
        "TemplateURL": f"{endpoint()}/{bucket}/{key}",
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    }
    existing = None
    try:
        existing = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except cfn.exceptions.ClientError:
        existing = None
    if existing in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"):
        log(f"stack {stack} is {existing}: deleting it first")
        cfn.delete_stack(StackName=stack)
        wait(cfn, stack, allow_missing=True)
        existing = None
    if existing is None:
        cfn.create_stack(**args, OnFailure="DELETE")
        action = "created"
    else:
        try:
            cfn.update_stack(**args)
            action = "updated"
        except cfn.exceptions.ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
            action = "unchanged"
    status = wait(cfn, stack)
    if action != "unchanged" and status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        report_failure(cfn, stack, status)
    outputs = stack_outputs(cfn, stack)
    apply_reserved_concurrency(stack, values["ReservedConcurrency"])
    log(
        f"stack {stack} {action} ({status}) in {time.monotonic() - started:.1f}s; "
        f"table {outputs.get('TableName')}"
    )
    print(base_url(outputs["ApiId"]), flush=True)


def apply_reserved_concurrency(stack: str, reserved: str) -> None:
    """MiniStack's CloudFormation ignores ReservedConcurrentExecutions; set it through the
    Lambda API so the emulated configuration matches the template. Measured on 1.5.33: it
    throttles unqualified invokes at the reservation, but invokes of the `live` alias (the
    API's integration target) are not counted, so API traffic is never throttled here."""
    import boto3

    client = boto3.client(
        "lambda",
        endpoint_url=endpoint(),
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    for name in FUNCTIONS.values():
        function = f"{stack}-{name}"
        if int(reserved) < 0:
            client.delete_function_concurrency(FunctionName=function)
        else:
            client.put_function_concurrency(
                FunctionName=function, ReservedConcurrentExecutions=int(reserved)
            )


def wait(cfn, stack: str, allow_missing: bool = False) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        except cfn.exceptions.ClientError:
            if allow_missing:
                return "DELETE_COMPLETE"
            raise
        if not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(0.3)
    sys.exit(f"stack {stack} still in progress after 300s")


def report_failure(cfn, stack: str, status: str) -> None:
    try:
        events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    except cfn.exceptions.ClientError:
        events = []
    for event in events:
        if "FAILED" in event["ResourceStatus"]:
            log(
                f"  {event['LogicalResourceId']} {event['ResourceType']}: "
                f"{event.get('ResourceStatusReason')}"
            )
    sys.exit(f"stack {stack} ended {status}")


def url() -> None:
    _, cfn = clients()
    print(base_url(stack_outputs(cfn, env("STACK_NAME", "order-service"))["ApiId"]))


def main() -> None:
    try:
        dispatch(sys.argv[1] if len(sys.argv) > 1 else "up")
    except Exception as error:  # noqa: BLE001 - one clean line instead of a traceback
        if type(error).__name__ not in ("ClientError", "InvalidDocumentException", "ValidationError"):
            raise
        sys.exit(f"{type(error).__name__}: {error}")


def dispatch(command: str) -> None:
    if command == "start":
        start()
    elif command == "deploy":
        deploy()
    elif command == "up":
        start()
        deploy()
    elif command == "url":
        url()
    elif command == "stop":
        stop()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
