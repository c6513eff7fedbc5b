"""Credentials never shown: userinfo stripped from URLs, secret literals blanked out of git's
output, and the literals a URL carries."""

from __future__ import annotations

import re
from collections.abc import Sequence

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s'\"]*@)")


# Redacting a very short literal would mangle ordinary words in git's messages.
_MIN_SECRET_LEN = 6


def strip_userinfo(url: str) -> str:
    """``https://user:tok@host/x`` -> ``https://host/x``; anything else is returned unchanged."""
    match = _URL_USERINFO.match(url)
    if not match:
        return url
    return match["scheme"] + url[match.end() :]


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Strip userinfo from every URL in ``text`` and blank out the given secret literals."""
    text = _URL_USERINFO.sub(lambda m: m["scheme"], text)
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_LEN:
            text = text.replace(secret, "***")
    return text


def url_secrets(url: str) -> list[str]:
    """The literal credentials in a URL: the whole userinfo, the password or a bare token."""
    match = _URL_USERINFO.match(url)
    if not match:
        return []
    userinfo = match["userinfo"][:-1]
    user, _, password = userinfo.partition(":")
    return [userinfo, password] if password else [userinfo, user]
