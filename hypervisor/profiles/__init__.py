"""Host profiles: what libvirt reports on real server models, as data (scripts/generate-host-profiles).

A host built from a profile gets the URI `test:///<profiles>/<name>/node.xml?host=<hostname>`. libvirt's
test driver reads the node file afresh on every open and ignores the query; the query makes the URI
unique per host, so the connection pool (keyed by URI) gives each host its own connection, and with it
its own in-memory domains, volumes and devices. Two hosts of one profile never see each other's guests.
"""

from pathlib import Path
from urllib.parse import quote

PROFILES_DIR = Path(__file__).resolve().parent
NODE_FILE = "node.xml"

RTX6000_2X2 = "rtx6000-2x2"  # Linode-like: 2 NUMA nodes x 2 Quadro RTX 6000 (4 functions each)
A100_2X4 = "a100-2x4"  # 8-GPU server: 2 NUMA nodes x 4 A100 PCIe 80GB
RTX6000_NONUMA = "rtx6000-nonuma"  # 2 RTX 6000 whose firmware reports no NUMA node
STANDARD_2X32 = "standard-2x32"  # no GPU
SYNTHETIC = "synthetic"  # hypervisor/synthetic.py hosts: an image pool, no hardware to discover


def profile_names() -> list[str]:
    return sorted(p.parent.name for p in PROFILES_DIR.glob(f"*/{NODE_FILE}"))


def profile_uri(profile: str, hostname: str) -> str:
    node_file = PROFILES_DIR / profile / NODE_FILE
    if not node_file.is_file():
        raise ValueError(f"no host profile {profile!r}; known profiles: {', '.join(profile_names())}")
    return f"test://{quote(node_file.as_posix())}?host={quote(hostname, safe='')}"


def synthetic_uri(hostname: str) -> str:
    """A test-driver URI of its own for a synthetic host: lifecycle calls work, discovery refuses."""
    return profile_uri(SYNTHETIC, hostname)
