"""A small run of the packing benchmark: best fit must keep its lead over the baselines."""

from benchmarks.bench_packing import make_fleet, make_trace, simulate
from provisioning.placement import best_fit, first_fit, spread


def sold(result) -> float:
    first = result["first_4gpu_rejection"]
    return first["sold"] if first else 1.0


def test_best_fit_sells_more_of_the_fleet_than_first_fit_and_spread_before_refusing_a_4_gpu_plan():
    hosts = make_fleet(40, "rtx6000-2x4")
    trace = make_trace(seed=7, total_gpus=320, load=1.2, arrivals=500)
    best, first, wide = (sold(simulate(trace, hosts, policy)) for policy in (best_fit, first_fit, spread))
    assert best >= 0.9
    assert best > first and best > wide


def test_the_offline_repack_bound_is_at_least_what_best_fit_sells():
    hosts = make_fleet(20, "rtx6000-2x2")
    trace = make_trace(seed=3, total_gpus=80, load=1.2, arrivals=300)
    online = sold(simulate(trace, hosts, best_fit))
    offline = simulate(trace, hosts, best_fit, repack=True)["first_4gpu_rejection"]
    assert (offline["sold"] if offline else 1.0) >= online - 0.05
