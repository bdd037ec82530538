import pytest

from hypervisor.capabilities import parse_capabilities
from hypervisor.errors import DiscoveryError
from hypervisor.profiles import A100_2X4, PROFILES_DIR, RTX6000_2X2

URI = "qemu+ssh://gpu-17.example/system"


def capabilities(cells: str) -> str:
    return f"<capabilities><host><topology><cells num='2'>{cells}</cells></topology></host></capabilities>"


CELL = """<cell id='{id}'><memory unit='KiB'>{kib}</memory>
  <pages unit='KiB' size='4'>100</pages><pages unit='KiB' size='2048'>16</pages>
  <pages unit='KiB' size='1048576'>{huge}</pages>
  <cpus num='2'>{cpus}</cpus></cell>"""


def cell(index: int, cpus: str, *, kib: int = 8 * 1024 * 1024, huge: int = 4) -> str:
    return CELL.format(id=index, kib=kib, huge=huge, cpus=cpus)


def test_the_rtx_profile_reads_as_two_nodes_of_24_cores_and_48_threads():
    cells = parse_capabilities((PROFILES_DIR / RTX6000_2X2 / "capabilities.xml").read_text(), uri=URI)
    assert [c.index for c in cells] == [0, 1]
    assert [c.memory_mib for c in cells] == [192 * 1024, 192 * 1024]
    assert [len(c.cpus) for c in cells] == [48, 48]
    assert [len({cpu.siblings for cpu in c.cpus}) for c in cells] == [24, 24]
    first = cells[0].cpus[0]
    assert (first.cpu_id, first.core_id, first.socket_id, first.siblings) == (0, 0, 0, (0, 48))
    assert {cpu.socket_id for cpu in cells[1].cpus} == {1}
    assert cells[1].cpus[0].siblings == (24, 72)
    assert [c.hugepages_1g_total for c in cells] == [160, 160]


def test_huge_pages_of_every_size_are_kept_and_free_counts_come_from_the_host():
    xml = capabilities(cell(0, "<cpu id='0' socket_id='0' core_id='0' siblings='0'/>", huge=8))
    (only,) = parse_capabilities(xml, uri=URI, free_pages={0: {1048576: 3, 2048: 10}})
    assert [(p.size_kib, p.total, p.free) for p in only.hugepages] == [(2048, 16, 10), (1048576, 8, 3)]
    assert (only.hugepages_1g_total, only.hugepages_1g_free) == (8, 3)


def test_sibling_ranges_are_understood():
    cpus = "".join(
        f"<cpu id='{i}' socket_id='0' core_id='{i // 2}' siblings='{i - i % 2}-{i - i % 2 + 1}'/>"
        for i in range(4)
    )
    (only,) = parse_capabilities(capabilities(cell(0, cpus)), uri=URI)
    assert [cpu.siblings for cpu in only.cpus] == [(0, 1), (0, 1), (2, 3), (2, 3)]


def test_the_eight_gpu_profile_numbers_amd_cores_without_gaps():
    cells = parse_capabilities((PROFILES_DIR / A100_2X4 / "capabilities.xml").read_text(), uri=URI)
    assert [len(c.cpus) for c in cells] == [64, 64]
    assert sorted({cpu.core_id for cpu in cells[0].cpus}) == list(range(32))


@pytest.mark.parametrize(
    ("xml", "complaint"),
    [
        ("<capabilities><host>", "not well-formed XML"),
        ("<domain/>", "not <capabilities>"),
        ("<capabilities><host><topology><cells num='0'/></topology></host></capabilities>", "no NUMA cells"),
        (capabilities("<cell><memory>1</memory><cpus/></cell>"), "has no 'id' attribute"),
        (
            capabilities("<cell id='0'><cpus><cpu id='0' socket_id='0' core_id='0'/></cpus></cell>"),
            "no memory size",
        ),
        (capabilities(cell(0, "")), "cell 0 lists no CPUs"),
        (capabilities(cell(0, "<cpu id='0' socket_id='0' siblings='0'/>")), "no 'core_id' attribute"),
        (
            capabilities(cell(0, "<cpu id='0' socket_id='0' core_id='0' siblings='zero'/>")),
            "unreadable siblings",
        ),
        (
            capabilities(cell(0, "<cpu id='0' socket_id='0' core_id='0' siblings='1'/>")),
            "not among its own siblings",
        ),
        (capabilities(cell(0, "<cpu id='x' socket_id='0' core_id='0'/>")), "'x' is not a number"),
        (
            capabilities(
                cell(0, "<cpu id='0' socket_id='0' core_id='0' siblings='0'/>")
                + cell(1, "<cpu id='0' socket_id='1' core_id='0' siblings='0'/>")
            ),
            "cpu 0 in cells 0 and 1",
        ),
        (
            capabilities(
                cell(0, "<cpu id='0' socket_id='0' core_id='0' siblings='0,1'/>")
                + cell(1, "<cpu id='1' socket_id='1' core_id='0' siblings='0,1'/>")
            ),
            "not CPUs of the same cell",
        ),
    ],
)
def test_malformed_capabilities_are_refused_with_the_reason_and_the_host(xml, complaint):
    with pytest.raises(DiscoveryError) as caught:
        parse_capabilities(xml, uri=URI)
    assert complaint in str(caught.value)
    assert str(caught.value).startswith(URI)
    assert not caught.value.transient
