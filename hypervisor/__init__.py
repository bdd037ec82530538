"""Plain Python, no Django: the only package that imports libvirt.

    connection   pooled libvirt connections keyed by URI: connect(uri), translated(uri=, step=)
    routing      on_host(uri, function, ...): run a call here, or in the hypervisor service for a
                 simulated host when the demo's service is in use
    service      the hypervisor service: one process holding every simulated host (the demo's one world)
    errors       HypervisorError, TransientHypervisorError, PermanentHypervisorError, DiscoveryError
    faults       fault injection for tests: faults.inject(Step.START, uri=..., times=2)
    discovery    discover(uri, hostname=) -> HostDescription (capabilities + PCI node devices)
    spec         DomainSpec and its parts: what a guest should look like
    domain_xml   build_domain_xml(spec) -> str, a pure function
    lifecycle    ensure_volume / ensure_defined / ensure_running / ensure_shut_off / ensure_absent,
                 list_managed_domains, reset_pci_device: each converges and returns an Outcome
    seed         the NoCloud `cidata` seed: build_seed_iso(seed), ensure_seed (uploaded through a volume
                 stream, read back); lifecycle.ensure_absent(seeds_of=) removes them
    profiles     host profiles as data, and the test-driver URIs of hosts built from them
    synthetic    HostDescriptions of server shapes, for bulk synthetic hosts

docs/hypervisor.md says how these fit together.
"""
