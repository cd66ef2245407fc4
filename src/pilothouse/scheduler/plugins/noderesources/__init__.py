"""Node resources: NodeResourcesFit (does the pod fit; LeastAllocated, MostAllocated or
RequestedToCapacityRatio scoring) and NodeResourcesBalancedAllocation — one folder,
as upstream's ``noderesources``, since both score with the same resource arithmetic."""
