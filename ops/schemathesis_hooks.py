"""Schemathesis hooks for `cargo xtask fuzz`.

Header values that are not ASCII never reach the functions locally: `cargo lambda watch`
answers 500 itself while turning such a request into an API Gateway event (on AWS, API
Gateway refuses such headers). Fuzzing them here would test the emulator, not the service, so
those cases are dropped; every other generated case runs with every check.

Bodies that are not UTF-8 do run: the patched gateway (ops/upstream/cargo-lambda.md, item 3)
base64-encodes them as API Gateway does, and the functions answer 400.
"""

import schemathesis


def _ascii_headers(headers):
    return all(str(value).isascii() for value in (headers or {}).values())


@schemathesis.hook
def filter_headers(context, headers):
    return _ascii_headers(headers)


@schemathesis.hook
def filter_case(context, case):
    return _ascii_headers(case.headers)
