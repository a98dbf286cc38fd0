"""Schemathesis hooks for `cargo xtask fuzz`.

Header values that are not ASCII, and bodies that are not UTF-8, never reach the functions
locally: `cargo lambda watch` answers 500 itself while turning such a request into an API
Gateway event (on AWS, API Gateway refuses the headers and base64-encodes such bodies, which
the functions answer with 400: the property tests in shared/src/http/request.rs feed arbitrary
bytes to that parser). Fuzzing them here would test the emulator, not the service, so those
cases are dropped; every other generated case runs with every check.
"""

import schemathesis


def _ascii_headers(headers):
    return all(str(value).isascii() for value in (headers or {}).values())


@schemathesis.hook
def filter_headers(context, headers):
    return _ascii_headers(headers)


def _utf8_body(body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


@schemathesis.hook
def filter_body(context, body):
    return _utf8_body(body)


@schemathesis.hook
def filter_case(context, case):
    return _ascii_headers(case.headers) and _utf8_body(getattr(case, "body", None))
