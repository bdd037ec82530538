"""The hypervisor service: one process holding every simulated (test-driver) host for the whole demo.

libvirt's test driver keeps a host's guests inside the process that opened it, so two worker processes
would each see a host of their own. The demo (scripts/run-demo) starts this service first; with
GPUADMIN_HYPERVISOR_SOCKET set, `hypervisor.routing.on_host` sends every call on a test:/// host here,
by function name and plain data, and every process sees one world.

    protocol   the request and answer, which functions may be called, the key file
    server     HypervisorService: listen, run calls, save state
    client     ServiceClient: what routing uses in the callers
    state      SavedHosts: each host's guests and volumes kept across restarts (as a real libvirtd does)
"""
