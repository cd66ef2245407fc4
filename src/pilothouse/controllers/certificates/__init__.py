"""CertificateSigningRequest controllers (upstream's csrsigning, csrapproving, csrcleaner).

* :class:`CSRSigningController` issues certificates from the cluster CA for approved
  requests to the ``kubernetes.io/kube-apiserver-client``,
  ``kubernetes.io/kube-apiserver-client-kubelet`` and ``kubernetes.io/kubelet-serving``
  signers, after checking each signer's rules (a request that breaks them gets a
  ``Failed`` condition instead);
* :class:`CSRApprovingController` approves node client requests from TLS bootstrap
  (a requester allowed ``create`` on ``certificatesigningrequests/nodeclient``) and
  from nodes renewing their own (``selfnodeclient``), asking with SubjectAccessReviews;
* :class:`CSRCleanerController` deletes requests that are done or stale.
"""

from pilothouse.controllers.certificates.approver import CSRApprovingController
from pilothouse.controllers.certificates.cleaner import CSRCleanerController
from pilothouse.controllers.certificates.signer import CSRSigningController

__all__ = ["CSRApprovingController", "CSRCleanerController", "CSRSigningController"]
