"""Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat...): POST {"text": ...}."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from integrations.errors import ConfigurationError, DeliveryFailed


def post_text(url: str, variable: str, text: str) -> None:
    """Post `text` to the webhook whose URL (a secret) is in the environment variable
    `variable`; errors name the variable, never the URL."""
    if not url.startswith(("https://", "http://")):
        raise ConfigurationError(f"set {variable} to the incoming webhook's URL")
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310
            answer.read()
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code != 429:
            raise ConfigurationError(
                f"the webhook in {variable} refused the message: HTTP {exc.code}"
            ) from None
        raise DeliveryFailed(f"the webhook in {variable} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryFailed(
            f"the webhook in {variable} is unreachable: {type(exc).__name__}"
        ) from None
