"""A global batch split across DDP workers, or run as micro-batches (train.accumulate), gives every network the
gradient that one process computes on the whole batch, for every model family: one step in float64, the
gradients compared as each optimiser is about to step (GAN frameworks: G's gradient through the D just
updated), and BatchNorm's running statistics after it.

Two workers run in processes of their own, started once for the module, each on half the batch with the
same masks: they meet through a file store and gloo is pinned to the loopback interface, so nothing
listens on the network. Tolerance: 1e-10 of the largest gradient element of the network, float64 rounding
of sums taken in another order; a loss that is a sum over images instead of a mean, or is normalised by a
worker's share instead of the whole batch, is off by a factor of 2. GDN's Weight and Det run at 32 px, the
others at 64 (tests/steps.py `image_size`).

BatchNorm under accumulation normalises each micro-batch by its own statistics (docs/departures.md): for the
BatchNorm families, accumulate = 2 on one worker is compared with two workers that do not synchronise
BatchNorm (train.sync_batchnorm: false), the same arithmetic.
"""
import functools
import os
import queue
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from inpaint.frameworks import global_batch
from steps import BATCHNORM, FAMILIES, batch, image_size, one_step

pytestmark = pytest.mark.slow  # two gloo processes per family: minutes

BATCH = 2
RTOL = 1e-10
WORKER_TIMEOUT_S = 900


def _batch(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    return batch(image_size(name), BATCH)


def _worker(rank: int, store: str, tasks, results) -> None:
    """One of two DDP workers: runs `one_step` on its half of the batch for every task until None."""
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's own connections on loopback too
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        half = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
        while (task := tasks.get()) is not None:
            name, sync_batchnorm, out = task
            try:
                image, mask = _batch(name)
                result = one_step(name, image[half], mask[half], ddp=True, sync_batchnorm=sync_batchnorm)
                if rank == 0:
                    torch.save(result, out)
                results.put(("ok", rank))
            except Exception:  # noqa: BLE001 - the test shows the worker's traceback
                results.put((traceback.format_exc(), rank))
                raise
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """`run(name, sync_batchnorm)`: the result of rank 0 of two DDP workers, each on half of the batch."""
    folder = tmp_path_factory.mktemp("ddp")
    ctx = mp.get_context("spawn")
    tasks, results = [ctx.Queue(), ctx.Queue()], ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(rank, str(folder / "store"), tasks[rank], results), daemon=True)
               for rank in range(2)]
    for w in workers:
        w.start()

    def run(name: str, sync_batchnorm: bool) -> dict:
        out = folder / f"{name}_{sync_batchnorm}.pt"
        for q in tasks:
            q.put((name, sync_batchnorm, str(out)))
        for _ in workers:
            try:
                status, rank = results.get(timeout=WORKER_TIMEOUT_S)
            except queue.Empty:
                pytest.fail(f"the DDP workers gave no result for {name} in {WORKER_TIMEOUT_S} s")
            assert status == "ok", f"rank {rank} failed on {name}:\n{status}"
        return torch.load(out, weights_only=True)

    yield run
    for q in tasks:
        q.put(None)
    for w in workers:
        w.join(timeout=60)
        if w.is_alive():
            w.kill()


@functools.cache
def _one_process(name: str) -> dict:
    return one_step(name, *_batch(name))


def _assert_equal(got: dict, want: dict, what: str) -> None:
    for kind in ("grads", "stats"):
        assert got[kind].keys() == want[kind].keys(), (what, kind)
        for role, tensors in want[kind].items():
            assert tensors.keys() == got[kind][role].keys(), (what, kind, role)
            if not tensors:
                continue
            scale = max(t.abs().max().item() for t in tensors.values())
            assert scale > 0, f"{what}: {role} has no {kind}"
            for n, t in tensors.items():
                torch.testing.assert_close(got[kind][role][n], t, rtol=RTOL, atol=RTOL * scale,
                                           msg=lambda m, n=n, role=role, kind=kind: f"{what}: {role}.{n} ({kind}): {m}")


@pytest.mark.parametrize("name", FAMILIES)
def test_two_workers_compute_the_one_process_gradient(name, two_workers):
    """SyncBatchNorm on (the default with more than one worker): running statistics match as well."""
    _assert_equal(two_workers(name, sync_batchnorm=True), _one_process(name), f"{name}, 2 workers")


@pytest.mark.parametrize("name", FAMILIES)
def test_accumulated_micro_batches_compute_the_one_process_gradient(name, two_workers):
    got = one_step(name, *_batch(name), accumulate=2)
    if name in BATCHNORM:
        got["stats"] = {role: {} for role in got["stats"]}  # see the module docstring
        want = two_workers(name, sync_batchnorm=False)
        want["stats"] = got["stats"]
        _assert_equal(got, want, f"{name}, accumulate 2 against 2 workers with per-worker BatchNorm")
        # what accumulation changes with BatchNorm (docs/departures.md quotes it): the relative distance of
        # each network's gradient from the one-process gradient
        ref = _one_process(name)["grads"]
        distance = {role: (_flat(got["grads"][role]) - _flat(g)).norm().item() / _flat(g).norm().item()
                    for role, g in ref.items()}
        print(f"{name}: accumulate 2 with BatchNorm, gradient distance from one batch {distance}")
        assert distance["generator"] > 1e-3, "per-micro-batch BatchNorm statistics should change the gradient"
    else:
        _assert_equal(got, _one_process(name), f"{name}, accumulate 2")


def _flat(tensors: dict) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors.values()])


def test_synchronise_keeps_shared_layers_shared_and_their_values():
    """LGNet_share's stages share their BatchNorm layers: one layer stays one layer, with its values."""
    shared = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        shared.weight.uniform_()
        shared.running_mean.uniform_()
    net = global_batch.synchronise(torch.nn.Sequential(shared, torch.nn.ReLU(), shared).double())
    assert isinstance(net[0], global_batch.SyncBatchNorm) and net[0] is net[2]
    assert net[0].weight.dtype == torch.float64
    torch.testing.assert_close(net[0].running_mean, shared.running_mean, rtol=0, atol=0)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(net(x), torch.nn.Sequential(shared, torch.nn.ReLU(), shared)(x))  # one process
