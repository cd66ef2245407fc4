"""The built-in local-path provisioner's node part (:mod:`.provisioner`) and how its
volumes are kept on disk (:mod:`.backing`)."""
