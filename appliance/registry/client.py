"""``stella push``'s registry client: the shared distribution client (``bundles.distribution``)
as the appliance pushes with it.

It names itself ``stella``, asks tokens for ``pull,push``, reaches the enclave's registry
directly (no proxy environment) over HTTPS, or plain HTTP for a loopback registry or when
``--plain-http`` asks, without probing, and does not retry: a push is run again by its
operator, and blobs already uploaded are not sent twice. Credentials come from ``--user`` and
``--password-env``.
"""

from __future__ import annotations

from pathlib import Path

from bundles import __version__
from bundles.distribution.client import Advice, RegistryClient, RegistryOptions
from bundles.distribution.credentials import Credentials
from bundles.distribution.reference import is_loopback_host


class PushClient(RegistryClient):
    """Pushes to one registry (``host[:port]``). Thread-safe for token handling."""

    user_agent = f"stella/{__version__}"
    actions = "pull,push"
    advice = Advice(
        missing="give --user NAME and --password-env VAR",
        refused="check the user name and the password in the --password-env variable",
    )

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        plain_http: bool = False,
        ca_bundle: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        plain = plain_http or is_loopback_host(registry)
        options = RegistryOptions(
            ca_bundle=Path(ca_bundle) if ca_bundle is not None else None,
            allow_http=frozenset({registry}) if plain_http else frozenset(),
            timeout=timeout,
            retries=0,
            scheme="http" if plain else "https",
            proxies=False,
        )
        super().__init__(registry, options, credentials=credentials)


class PullClient(PushClient):
    """Reads from one registry (``stella images load docker://…``): tokens for ``pull`` only,
    so a read-only account will do."""

    actions = "pull"
