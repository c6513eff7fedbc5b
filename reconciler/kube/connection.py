"""How a client reaches one context: its server, TLS files and request headers.

A :class:`Connection` is what the client needs of a context's credentials. Simple kubeconfig
contexts give one directly (``reconciler.kube.kubeconfig``); every other kind (exec and
auth-provider plugins, in-cluster ServiceAccounts, member Secrets) is configured by the
``kubernetes`` package, imported only then (:func:`configured`): importing it costs a CLI run
a good part of a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class CredentialsError(Exception):
    """A context's credentials cannot be used (the ``kubernetes`` package's ConfigException,
    or the same kind of fault found without it)."""


@dataclass(frozen=True)
class Connection:
    """One context's server (``https://host:port``, no trailing slash), TLS files and how to
    authenticate a request (``headers`` is called per request: tokens may be refreshed, and
    may raise CredentialsError then)."""

    host: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    verify: bool
    server_name: str | None
    headers: Callable[[], dict[str, str]]


def configured(configure: Callable[[Any], None]) -> Connection:
    """The connection the ``kubernetes`` package sets up: ``configure`` fills a fresh
    ``kubernetes.client.Configuration`` (raising ConfigException when it cannot)."""
    from kubernetes import client as k8s
    from kubernetes.config.config_exception import ConfigException

    configuration = k8s.Configuration()
    try:
        configure(configuration)
    except ConfigException as err:
        raise CredentialsError(str(err)) from err
    api = k8s.ApiClient(configuration)  # credentials only (tokens, exec plugins)

    def headers() -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            api.update_params_for_auth(found, [], ["BearerToken"])
        except ConfigException as err:  # refreshing credentials (exec plugin, token file)
            raise CredentialsError(str(err)) from err
        return found

    return Connection(
        host=str(configuration.host).rstrip("/"),
        ca_file=configuration.ssl_ca_cert or None,
        cert_file=configuration.cert_file or None,
        key_file=configuration.key_file or None,
        verify=bool(configuration.verify_ssl),
        server_name=getattr(configuration, "tls_server_name", None) or None,
        headers=headers,
    )
