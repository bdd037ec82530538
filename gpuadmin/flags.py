"""Names of the feature flags and switches, so code never spells them twice."""

GPU_INSTANCES = "gpu_instances"
PROVISIONING_ENABLED = "provisioning_enabled"
