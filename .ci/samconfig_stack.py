#!/usr/bin/env python3
"""Prints the stack name samconfig.toml gives a config environment (`staging`, `prod`), from its
deploy parameters or, failing those, its global ones, so the deploy workflow never spells a
stack name that samconfig.toml does not.

    python3 .ci/samconfig_stack.py staging
"""

import sys
import tomllib
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: samconfig_stack.py CONFIG_ENV", file=sys.stderr)
        return 2
    config_env = argv[0]
    config = tomllib.loads((Path(__file__).resolve().parent.parent / "samconfig.toml").read_text())
    environment = config.get(config_env)
    if not isinstance(environment, dict):
        print(f"samconfig.toml has no [{config_env}] environment", file=sys.stderr)
        return 1
    for command in ("deploy", "global"):
        name = environment.get(command, {}).get("parameters", {}).get("stack_name")
        if name:
            print(name)
            return 0
    print(f"samconfig.toml [{config_env}] names no stack_name", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
