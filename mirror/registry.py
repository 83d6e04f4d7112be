"""The mirror's registry client: the shared distribution client (``bundles.distribution``)
as ``stella-mirror images add`` pulls with it, naming itself ``stella-mirror`` and pointing
its user at the docker config for credentials.

oras-py was weighed for pulling and not used for transfers: its client parses manifests into
dicts (the bytes are the identity here), does not verify blobs while they stream, cannot
resume a blob, and keeps one token for all repositories. See docs/images.md.
"""

from __future__ import annotations

from bundles import __version__
from bundles.distribution.client import Advice, RegistryClient


class PullClient(RegistryClient):
    """Pulls images and their referrers from one registry for the mirror."""

    user_agent = f"stella-mirror/{__version__}"
    advice = Advice(
        missing="add an 'auths' entry for this registry to the docker config "
        "(--docker-config FILE)",
        refused="check the user name and password, or log in again",
    )
