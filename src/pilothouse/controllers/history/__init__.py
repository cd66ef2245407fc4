"""ControllerRevision history, shared by the StatefulSet and DaemonSet controllers
(upstream's ``pkg/controller/history`` and the revision helpers beside it).

* :mod:`.revisions` — revisions without I/O: the template patch a revision stores,
  names and hashes (with the collision count), equality, ordering, revision numbers,
  what a history limit removes, applying a revision to its owner;
* :mod:`.gojson` — the bytes Go's encoding/json writes for that patch, so names and
  ``kubectl rollout undo``'s comparisons match upstream's;
* :mod:`.client` — :class:`~.client.History`: list, create (counting collisions),
  renumber, delete and adopt revisions through the API.
"""
