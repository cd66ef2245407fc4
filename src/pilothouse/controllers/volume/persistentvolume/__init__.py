"""The PersistentVolume binder (upstream's pkg/controller/volume/persistentvolume).

:mod:`.controller` (handlers, keys, the single worker), :mod:`.claims` (syncing a
claim: matching, binding, handing off to a provisioner), :mod:`.volumes` (syncing
a volume: phases, reclaim policies), :mod:`.index` (which volume a claim gets),
:mod:`.binder` (the writes both sides share) and :mod:`.cache` (the binder's view
of objects it has just written).
"""

from pilothouse.controllers.volume.persistentvolume.controller import PersistentVolumeController

__all__ = ["PersistentVolumeController"]
