"""Webhook authenticity, function by function: HMAC signatures and shared secrets, with
requests built in-process (no server)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from fastapi import Request

from api.signatures import pagerduty_signature_ok, sha256_signature_ok, shared_secret_ok

SECRET = "s3cret-token"
BODY = b'{"event": "resolved"}'
GOOD = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


def request(**headers: str) -> Request:
    raw = [
        (name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()
    ]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw})


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_sha256_signature_of_the_raw_body():
    assert sha256_signature_ok(SECRET, BODY, f"sha256={GOOD}")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        GOOD,  # the prefix is required
        f"sha1={GOOD}",
        f"SHA256={GOOD}",
        f"sha256={GOOD.upper()}",
        f"sha256={GOOD[:-1]}",
        f"sha256={hmac.new(b'other', BODY, hashlib.sha256).hexdigest()}",
        f"sha256={hmac.new(SECRET.encode(), BODY + b' ', hashlib.sha256).hexdigest()}",
        f"sha256={hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()}",
    ],
)
def test_sha256_signature_refused(header: str | None):
    assert not sha256_signature_ok(SECRET, BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        f"v1={GOOD}",
        f"v1=0000,v1={GOOD}",  # two while the secret rotates, the new one second
        f"v1={GOOD},v1=0000",
        f"v1=0000, v1={GOOD}",
        f" v1={GOOD} ",
    ],
)
def test_pagerduty_signature_any_v1_value_matches(header: str):
    assert pagerduty_signature_ok(SECRET, BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=0000",
        f"v0={GOOD}",
        f"V1={GOOD}",
        f"{GOOD}",
        f"v1={GOOD}=",
        f"v1:{GOOD}",
        f"v1={hmac.new(b'other', BODY, hashlib.sha256).hexdigest()}",
    ],
)
def test_pagerduty_signature_refused(header: str | None):
    assert not pagerduty_signature_ok(SECRET, BODY, header)


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {SECRET}"},
        {"authorization": f"bearer {SECRET}"},
        {"authorization": f"BEARER {SECRET}"},
        {"authorization": basic(f"any-user:{SECRET}")},
        {"authorization": basic(f":{SECRET}")},
        {"authorization": "basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()},
        {"authorization": SECRET},  # the raw value, for tools that send only the secret
    ],
)
def test_shared_secret_from_the_authorization_header(headers: dict[str, str]):
    assert shared_secret_ok(SECRET, request(**headers))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": ""},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Bearer  {SECRET}"},
        {"authorization": f"Token {SECRET}"},
        {"authorization": basic(f"{SECRET}:password")},  # the user name is not the secret
        {"authorization": basic(SECRET)},  # no colon: no password
        {"authorization": "Basic !!not-base64!!"},
        {"authorization": "Basic " + base64.b64encode(b"u:\xff\xfe").decode()},
        {"x_webhook_secret": SECRET},  # a header nobody named is not read
    ],
)
def test_shared_secret_refused(headers: dict[str, str]):
    assert not shared_secret_ok(SECRET, request(**headers))


@pytest.mark.parametrize("secret", [SECRET, "XXXX", "Bearer", "Basic"])
def test_no_credentials_pass_whatever_the_secret(secret: str):
    assert not shared_secret_ok(secret, request())
    assert not shared_secret_ok(secret, request(), "X-Webhook-Secret")


def test_a_secret_with_spaces_as_a_bearer_token():
    assert shared_secret_ok(
        "correct horse battery", request(authorization="Bearer correct horse battery")
    )
    assert not shared_secret_ok("battery", request(authorization="Bearer correct horse battery"))


def test_shared_secret_in_the_named_header():
    assert shared_secret_ok(SECRET, request(x_webhook_secret=SECRET), "X-Webhook-Secret")
    assert not shared_secret_ok(SECRET, request(x_webhook_secret="wrong"), "X-Webhook-Secret")
    assert not shared_secret_ok(SECRET, request(x_other=SECRET), "X-Webhook-Secret")


def test_a_wrong_named_header_does_not_hide_a_right_authorization():
    headers = request(x_webhook_secret="wrong", authorization=f"Bearer {SECRET}")
    assert shared_secret_ok(SECRET, headers, "X-Webhook-Secret")
    assert shared_secret_ok(SECRET, request(authorization=f"Bearer {SECRET}"), "X-Webhook-Secret")
