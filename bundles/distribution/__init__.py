"""The OCI distribution client both sides use: ``stella-mirror images add`` pulls with it,
``stella push`` pushes with it.

- ``reference``: registry names (and which are loopback), repository and tag grammar, image
  references, the referrers fallback tag. Pure: ``stella serve`` uses it too.
- ``credentials``: user name and password, docker ``config.json``, Basic headers, parsed
  ``WWW-Authenticate`` challenges. Pure.
- ``errors``: the registry error family.
- ``transport``: HTTP through urllib3 (pools, TLS, proxies, redirects hop by hop).
- ``client``: ``RegistryClient``: base URL, token and Basic authentication, retries,
  manifests, referrers, blob reads and uploads. Each side subclasses it to name itself.
- ``blobs``: a blob streamed and resumed with ``Range``; the consumer verifies its digest.

Only ``transport``, ``client`` and ``blobs`` load an HTTP client, and this package is the only
part of ``bundles`` that may (``scripts/check_layers.py``). Nothing here is imported by the
appliance's import, scan, match or gate: the disconnected side opens connections only for
``stella push`` (DESIGN §1, invariant 2). This module imports none of them, so that the pure
modules can be used alone.

urllib3, not requests: the client needs connection pools, TLS and timeouts, which urllib3
gives directly; requests adds nothing it uses, about 100 modules and 30-130 ms to start-up.
"""
