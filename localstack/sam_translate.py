#!/usr/bin/env python3
"""Translate a SAM template to plain CloudFormation with aws-sam-translator, offline, as
CloudFormation's AWS::Serverless-2016-10-31 transform does (and localstack/emulator.py before
it deploys). The translator rejects templates that cfn-lint passes (a conditional
CapacityProviderConfig, for one), so a template is only known to deploy once it translates.

    sam_translate.py TEMPLATE [--out PATH] [Key=Value ...]

Key=Value pairs are template parameter values (the others take their Default). A function's
local CodeUri (`.`) first becomes a placeholder S3 location, as `sam package` would make it
(the translator takes S3 code only), whether it is the function's or Globals'. On success it writes the CloudFormation JSON to --out (if
given) and one summary line to stderr; on a translator error it prints every cause and exits 1.
Runs in the emulator venv (localstack/requirements-emulator.txt pins aws-sam-translator).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace


def main(argv: list[str]) -> int:
    out: Path | None = None
    template_path: Path | None = None
    values: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg == "--out":
            target = next(args, None)
            if target is None:
                print("--out needs a path", file=sys.stderr)
                return 2
            out = Path(target)
        elif "=" in arg:
            key, _, value = arg.partition("=")
            values[key] = value
        elif template_path is None:
            template_path = Path(arg)
        else:
            print(f"unexpected argument {arg!r}", file=sys.stderr)
            return 2
    if template_path is None:
        print(__doc__, file=sys.stderr)
        return 2

    # The translator asks boto3 for the region (partition of generated ARNs); nothing is called.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # Offline there is no feature-toggle config: every function would log that one is missing.
    logging.getLogger("samtranslator.feature_toggle").setLevel(logging.ERROR)
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    template = yaml_parse(template_path.read_text())
    global_code = ((template.get("Globals") or {}).get("Function") or {}).get("CodeUri")
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.setdefault("Properties", {})
        code = properties.get("CodeUri", global_code)
        if isinstance(code, str) and not code.startswith("s3://"):
            # The function's own CodeUri overrides the one in Globals.
            properties["CodeUri"] = {
                "Bucket": "sam-translate-placeholder",
                "Key": f"{logical_id}.zip",
            }
    try:
        # No managed-policy lookups: the template names its policies explicitly.
        translated = transform(template, dict(values), SimpleNamespace(load=lambda: {}))
    except InvalidDocumentException as error:
        print(f"{template_path}: {error.message}", file=sys.stderr)
        for cause in error.causes:
            print(f"  {cause.message}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - any translator failure is the answer
        print(f"{template_path}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1

    resources = translated.get("Resources", {})
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(translated, indent=1, sort_keys=True))
    print(
        f"{template_path}: translated to {len(resources)} CloudFormation resources",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
