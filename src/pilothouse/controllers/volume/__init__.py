"""The volume controllers (upstream's pkg/controller/volume): the PersistentVolume
binder (:mod:`.persistentvolume`), the pvc- and pv-protection finalizer removers
(:mod:`.pvcprotection`, :mod:`.pvprotection`) and the ephemeral-volume controller
(:mod:`.ephemeral`)."""
