"""wait_pod_replaced: true only once the noted incarnation is gone."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from probes import kubernetes as k8s
from tests.k8s.fakeapi import FakeKubeAPI


def test_the_same_incarnation_is_not_replaced(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """While the pod keeps its UID the wait times out False."""
    k8s.pod_uid("mysql-0", configuration=config)
    assert k8s.wait_pod_replaced("mysql-0", timeout=0.3, configuration=config) is False


def test_a_deleted_or_recreated_pod_is_replaced(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """A pod deleted (or back under a new UID) is no longer the noted incarnation."""
    uid = k8s.pod_uid("mysql-0", configuration=config)
    api.remove("pods", "mysql-0", "mysql")
    assert k8s.wait_pod_replaced("mysql-0", timeout=1, configuration=config) is True
    assert k8s.wait_pod_replaced("mysql-0", uid=uid, timeout=1, configuration=config) is True


def test_without_a_noted_uid_it_says_what_to_do(api: FakeKubeAPI, config: dict[str, Any]) -> None:
    """No uid given and none noted: one line pointing at pod_uid, no request sent."""
    with pytest.raises(ActivityFailed, match="call pod_uid first"):
        k8s.wait_pod_replaced("mysql-0", configuration=config)
    assert api.requests == []
