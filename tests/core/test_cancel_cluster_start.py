"""A cancel while the dask workers are still starting ends the job at once; the workers close behind it."""
from __future__ import annotations

import threading

from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.runtime import cluster
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.cluster import ClusterChoice, engine


class SlowCluster:
    """A LocalCluster stand-in whose start waits until the test lets it go."""

    started = threading.Event()
    release = threading.Event()
    closed = threading.Event()

    def __init__(self, **kwargs):
        SlowCluster.started.set()
        SlowCluster.release.wait(30)

    def close(self):
        SlowCluster.closed.set()


class FakeClient:
    dashboard_link = ""

    def __init__(self, *args, **kwargs):
        pass

    def close(self):
        pass


def test_a_cancel_during_the_cluster_start_ends_the_job_and_the_cluster_closes_later(monkeypatch):
    monkeypatch.setattr(cluster, "LocalCluster", SlowCluster)
    monkeypatch.setattr(cluster, "Client", FakeClient)
    token = CancelToken()
    outcome = {}

    def job():
        try:
            with engine(ClusterChoice(workers=1), token):
                outcome["entered"] = True
        except Cancelled:
            outcome["cancelled"] = True

    thread = threading.Thread(target=job)
    thread.start()
    assert SlowCluster.started.wait(30)
    token.cancel()
    thread.join(30)
    # the job ended while the cluster had not finished starting
    assert outcome == {"cancelled": True} and not SlowCluster.release.is_set()
    SlowCluster.release.set()
    assert SlowCluster.closed.wait(30)


def test_without_a_cancel_the_cluster_opens_as_before(monkeypatch):
    class Quick(SlowCluster):
        def __init__(self, **kwargs):
            pass

    monkeypatch.setattr(cluster, "LocalCluster", Quick)
    monkeypatch.setattr(cluster, "Client", FakeClient)
    with engine(ClusterChoice(workers=1), CancelToken()) as eng:
        assert eng.own

