"""Column descriptions: the API's own field documentation, as Kubernetes 1.32 sends it.

Upstream fills ``TableColumnDefinition.description`` from the generated swagger
docs of k8s.io/api and k8s.io/apimachinery v0.32 (``SwaggerDoc()`` of the named
type and field); kubectl shows them nowhere, but clients that render tables do.
Each constant names its source as ``Type.field``.
"""

from __future__ import annotations

# meta/v1 ObjectMeta.name
NAME = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
# meta/v1 ObjectMeta.creationTimestamp
CREATION_TIMESTAMP = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
# core/v1 PodStatus.podIP
POD_IP = "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
# core/v1 PodSpec.nodeName
POD_NODE_NAME = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"
# core/v1 PodStatus.nominatedNodeName
POD_NOMINATED_NODE_NAME = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled."
# core/v1 PodSpec.readinessGates
POD_READINESS_GATES = 'If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to "True" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates'
# extensions/v1beta1 ReplicaSetSpec.replicas
REPLICASET_SPEC_REPLICAS = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"
# extensions/v1beta1 ReplicaSetStatus.replicas
REPLICASET_STATUS_REPLICAS = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"
# extensions/v1beta1 ReplicaSetStatus.readyReplicas
REPLICASET_READY_REPLICAS = "The number of ready replicas for this replica set."
# extensions/v1beta1 ReplicaSetSpec.selector
REPLICASET_SELECTOR = "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
# core/v1 ReplicationControllerSpec.replicas
RC_SPEC_REPLICAS = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"
# core/v1 ReplicationControllerStatus.replicas
RC_STATUS_REPLICAS = "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"
# core/v1 ReplicationControllerStatus.readyReplicas
RC_READY_REPLICAS = "The number of ready replicas for this replication controller."
# core/v1 ReplicationControllerSpec.selector
RC_SELECTOR = "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
# extensions/v1beta1 DaemonSetStatus.desiredNumberScheduled
DAEMONSET_DESIRED = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
# extensions/v1beta1 DaemonSetStatus.currentNumberScheduled
DAEMONSET_CURRENT = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
# extensions/v1beta1 DaemonSetStatus.numberReady
DAEMONSET_READY = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."
# extensions/v1beta1 DaemonSetStatus.updatedNumberScheduled
DAEMONSET_UPDATED = "The total number of nodes that are running updated daemon pod"
# extensions/v1beta1 DaemonSetStatus.numberAvailable
DAEMONSET_AVAILABLE = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"
# core/v1 PodSpec.nodeSelector
POD_NODE_SELECTOR = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"
# extensions/v1beta1 DaemonSetSpec.selector
DAEMONSET_SELECTOR = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
# batch/v1 JobStatus.succeeded
JOB_SUCCEEDED = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs."
# batch/v1 JobSpec.selector
JOB_SELECTOR = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
# batch/v1beta1 CronJobSpec.schedule
CRONJOB_SCHEDULE = "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."
# batch/v1beta1 CronJobSpec.timeZone
CRONJOB_TIME_ZONE = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"
# batch/v1beta1 CronJobSpec.suspend
CRONJOB_SUSPEND = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."
# batch/v1beta1 CronJobStatus.active
CRONJOB_ACTIVE = "A list of pointers to currently running jobs."
# batch/v1beta1 CronJobStatus.lastScheduleTime
CRONJOB_LAST_SCHEDULE_TIME = (
    "Information when was the last time the job was successfully scheduled."
)
# core/v1 ServiceSpec.type
SERVICE_TYPE = 'type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is "None", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. "NodePort" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. "LoadBalancer" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. "ExternalName" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types'
# core/v1 ServiceSpec.clusterIP
SERVICE_CLUSTER_IP = 'clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are "None", empty string (""), or a valid IP address. Setting this to "None" makes a "headless service" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies'
# core/v1 ServiceSpec.externalIPs
SERVICE_EXTERNAL_IPS = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system."
# core/v1 ServiceSpec.ports
SERVICE_PORTS = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"
# core/v1 ServiceSpec.selector
SERVICE_SELECTOR = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/"
# core/v1 Endpoints.subsets
ENDPOINTS_SUBSETS = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service."
# core/v1 NodeSystemInfo.kubeletVersion
NODE_KUBELET_VERSION = "Kubelet Version reported by the node."
# core/v1 NodeStatus.addresses
NODE_ADDRESSES = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP)."
# core/v1 NodeSystemInfo.osImage
NODE_OS_IMAGE = (
    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."
)
# core/v1 NodeSystemInfo.kernelVersion
NODE_KERNEL_VERSION = (
    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."
)
# core/v1 NodeSystemInfo.containerRuntimeVersion
NODE_CONTAINER_RUNTIME_VERSION = "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."
# core/v1 Event.lastTimestamp
EVENT_LAST_TIMESTAMP = "The time at which the most recent occurrence of this event was recorded."
# core/v1 Event.type
EVENT_TYPE = "Type of this event (Normal, Warning), new types could be added in the future"
# core/v1 Event.reason
EVENT_REASON = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."
# core/v1 Event.involvedObject
EVENT_INVOLVED_OBJECT = "The object that this event is about."
# core/v1 ObjectReference.fieldPath
OBJECT_REFERENCE_FIELD_PATH = 'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: "spec.containers{name}" (where "name" refers to the name of the container that triggered the event) or if no container name is specified "spec.containers[2]" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.'
# core/v1 Event.source
EVENT_SOURCE = (
    "The component reporting this event. Should be a short machine understandable string."
)
# core/v1 Event.message
EVENT_MESSAGE = "A human-readable description of the status of this operation."
# core/v1 Event.firstTimestamp
EVENT_FIRST_TIMESTAMP = (
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"
)
# core/v1 Event.count
EVENT_COUNT = "The number of times this event has occurred."
# core/v1 Secret.type
SECRET_TYPE = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"
# core/v1 Secret.data
SECRET_DATA = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"
# core/v1 ServiceAccount.secrets
SERVICE_ACCOUNT_SECRETS = 'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a "kubernetes.io/enforce-mountable-secrets" annotation set to "true". The "kubernetes.io/enforce-mountable-secrets" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret'
# core/v1 PersistentVolumeSpec.capacity
PV_CAPACITY = "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"
# core/v1 PersistentVolumeSpec.accessModes
PV_ACCESS_MODES = "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"
# core/v1 PersistentVolumeSpec.persistentVolumeReclaimPolicy
PV_RECLAIM_POLICY = "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"
# core/v1 PersistentVolumeStatus.phase
PV_PHASE = "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"
# core/v1 PersistentVolumeSpec.claimRef
PV_CLAIM_REF = "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"
# core/v1 PersistentVolumeStatus.reason
PV_REASON = "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."
# core/v1 PersistentVolumeSpec.volumeMode
PV_VOLUME_MODE = "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec."
# core/v1 PersistentVolumeClaimStatus.phase
PVC_PHASE = "phase represents the current phase of PersistentVolumeClaim."
# core/v1 PersistentVolumeClaimSpec.volumeName
PVC_VOLUME_NAME = "volumeName is the binding reference to the PersistentVolume backing this claim."
# core/v1 PersistentVolumeClaimStatus.capacity
PVC_CAPACITY = "capacity represents the actual resources of the underlying volume."
# core/v1 PersistentVolumeClaimStatus.accessModes
PVC_ACCESS_MODES = "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"
# core/v1 PersistentVolumeClaimSpec.volumeMode
PVC_VOLUME_MODE = "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec."
# extensions/v1beta1 DeploymentStatus.updatedReplicas
DEPLOYMENT_UPDATED_REPLICAS = "Total number of non-terminated pods targeted by this deployment that have the desired template spec."
# extensions/v1beta1 DeploymentStatus.availableReplicas
DEPLOYMENT_AVAILABLE_REPLICAS = "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."
# extensions/v1beta1 DeploymentSpec.selector
DEPLOYMENT_SELECTOR = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."
# core/v1 ConfigMap.data
CONFIGMAP_DATA = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."
# coordination/v1 LeaseSpec.holderIdentity
LEASE_HOLDER_IDENTITY = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field."
# storage/v1 StorageClass.provisioner
STORAGECLASS_PROVISIONER = "provisioner indicates the type of the provisioner."
# storage/v1 StorageClass.reclaimPolicy
STORAGECLASS_RECLAIM_POLICY = "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."
# storage/v1 StorageClass.volumeBindingMode
STORAGECLASS_VOLUME_BINDING_MODE = "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."
# storage/v1 StorageClass.allowVolumeExpansion
STORAGECLASS_ALLOW_VOLUME_EXPANSION = (
    "allowVolumeExpansion shows whether the storage class allow volume expand."
)
# apps/v1beta1 ControllerRevision.revision
CONTROLLER_REVISION_REVISION = "revision indicates the revision of the state represented by Data."
# scheduling/v1 PriorityClass.value
PRIORITYCLASS_VALUE = "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."
# scheduling/v1 PriorityClass.globalDefault
PRIORITYCLASS_GLOBAL_DEFAULT = "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority."
# scheduling/v1 PriorityClass.preemptionPolicy
PRIORITYCLASS_PREEMPTION_POLICY = "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."
# discovery/v1beta1 EndpointSlice.addressType
ENDPOINTSLICE_ADDRESS_TYPE = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name."
# discovery/v1beta1 EndpointSlice.ports
ENDPOINTSLICE_PORTS = 'ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates "all ports". Each slice may include a maximum of 100 ports.'
# discovery/v1beta1 EndpointSlice.endpoints
ENDPOINTSLICE_ENDPOINTS = "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints."
