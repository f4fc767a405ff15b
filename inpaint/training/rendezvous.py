"""torch.distributed for a Ray Train run whose workers all live on this machine, listening on loopback only.

Ray Train's TorchConfig meets its workers through torch's TCPStore, which listens on every interface
(reachable from the network), and gloo then listens on the address the host name resolves to. On one
machine neither needs the network: rank 0 binds the store's socket to 127.0.0.1 itself (TCPStore accepts
a listening socket, `master_listen_fd`) and gloo / NCCL are pinned to the loopback interface. A single
worker needs no process group at all (Ray's `prepare_model` wraps in DDP only for more than one), so
nothing listens. Used by the local default (inpaint/cluster.py); a real cluster keeps Ray's TorchConfig.
"""
from __future__ import annotations

import os
import socket
from datetime import timedelta

import ray
from ray.train.backend import Backend
from ray.train.torch import TorchConfig

LOOPBACK = "127.0.0.1"
_listening: socket.socket | None = None  # rank 0's store socket, between `_listen` and `_join`


class LoopbackTorchConfig(TorchConfig):
    """TorchConfig (backend, timeout) with a process group that listens on 127.0.0.1 only."""

    @property
    def backend_cls(self):
        return LoopbackBackend


class LoopbackBackend(Backend):
    share_cuda_visible_devices = True

    def on_start(self, worker_group, backend_config: TorchConfig) -> None:
        world = len(worker_group)
        if world == 1:
            return
        backend = backend_config.backend or "gloo"
        port = worker_group.execute_single(0, _listen)
        ray.get([worker_group.execute_single_async(rank, _join, world_rank=rank, world=world, port=port,
                                                   backend=backend, timeout_s=backend_config.timeout_s)
                 for rank in range(world)])

    def on_shutdown(self, worker_group, backend_config: TorchConfig) -> None:
        if len(worker_group) > 1:
            worker_group.execute(_leave)


def _listen() -> int:
    global _listening
    _listening = socket.socket()
    _listening.bind((LOOPBACK, 0))
    _listening.listen()
    return _listening.getsockname()[1]


def _join(world_rank: int, world: int, port: int, backend: str, timeout_s: int) -> None:
    import torch.distributed as dist

    os.environ["GLOO_SOCKET_IFNAME"] = os.environ["NCCL_SOCKET_IFNAME"] = "lo"
    timeout = timedelta(seconds=timeout_s)
    if world_rank == 0:
        store = dist.TCPStore(LOOPBACK, port, world, True, timeout, master_listen_fd=_listening.fileno())
    else:
        store = dist.TCPStore(LOOPBACK, port, world, False, timeout)
    dist.init_process_group(backend=backend, store=store, rank=world_rank, world_size=world, timeout=timeout)


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
