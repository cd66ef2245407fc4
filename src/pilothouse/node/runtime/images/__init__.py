"""Container images on a node: pull from OCI registries, import archives, share unpacked layers.

Modules, by concern:

* :mod:`.reference` — docker-style reference parsing and normalisation.
* :mod:`.auth` — imagePullSecrets to credentials; WWW-Authenticate challenges.
* :mod:`.registry` — the distribution v2 client (token and basic auth, verified blobs);
  :mod:`.pull` — resolving a reference and handing its manifest to the store.
* :mod:`.mediatypes` — OCI/Docker media types; choosing this machine's manifest.
* :mod:`.content` — content-addressed blobs; :mod:`.unpack` — applying a layer tarball
  in overlayfs form; :mod:`.layers` — one directory per layer, unpacked once.
* :mod:`.metadata` — the JSON image index; :mod:`.store` — :class:`ImageStore`, the
  runtime's ImageService; :mod:`.archive` — ``pilothouse images import``.
* :mod:`.testimage` — builds a busybox OCI image and pushes images, for tests.
"""

from pilothouse.node.runtime.images.auth import auth_from_dockerconfig
from pilothouse.node.runtime.images.store import ImageStore

__all__ = ["ImageStore", "auth_from_dockerconfig"]
