"""The local Ray default listens on the loopback address only."""
import os

import pytest


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from inpaint import cluster

    saved = os.environ.pop("RAY_ADDRESS", None)
    cluster.connect(None)
    yield ray
    ray.shutdown()
    if saved is not None:
        os.environ["RAY_ADDRESS"] = saved


def test_local_ray_listens_on_loopback(ray_session):
    from inpaint import cluster

    assert cluster.node_addresses() == ["127.0.0.1"]
    assert ray_session.get_runtime_context().gcs_address.startswith("127.0.0.1:")

    @ray_session.remote
    def worker_ip():
        import ray

        return ray.util.get_node_ip_address()

    assert ray_session.get(worker_ip.remote()) == "127.0.0.1"
