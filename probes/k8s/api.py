"""The few Kubernetes API calls `probes.kubernetes` makes, through the real `kubernetes` client.

Responses are read as plain JSON (`_preload_content=False`) so the rules in `model` see the
same dicts the API server sent and tests can compare them with recorded fixtures. Every failure
becomes one `ActivityFailed` line naming the call, the HTTP status and the server's message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from chaosk8s import create_k8s_api_client
from chaoslib.exceptions import ActivityFailed
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from probes.k8s.model import Obj

logger = logging.getLogger("chaostoolkit")

# Exactly the API permissions `Cluster` calls need and no more; tests/k8s checks every request
# the activities send against it. pods: get in both namespaces, create only in the chaos
# namespace (helper pod), delete in both (force/plain delete of MySQL pods, finished helper pods).
REQUIRED_RBAC: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "delete", "get"],
        "scope": "namespace",
    },
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"], "scope": "cluster"},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"], "scope": "namespace"},
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["create", "delete", "get"],
        "scope": "namespace",
    },
]

# A failed json-patch `test` answers 422, a stale resourceVersion 409: both mean "re-read, retry".
_CONFLICT = (409, 422)


class Conflict(Exception):
    """The object changed between our read and our write."""


class Unavailable(ActivityFailed):  # type: ignore[misc]  # chaoslib ships no type information
    """The API could not answer right now (unreachable, 429, 5xx): worth asking again."""


@contextmanager
def cluster(secrets: dict[str, Any] | None, request_timeout: float) -> Iterator[Cluster]:
    """A client configured exactly as chaostoolkit-kubernetes configures its own.

    KUBECONFIG (or ~/.kube/config) with an optional KUBERNETES_CONTEXT, else in-cluster when
    CHAOSTOOLKIT_IN_POD=true, else KUBERNETES_HOST and friends; each key is looked up in the
    `kubernetes` secrets first, then the environment.
    """
    try:
        api_client = create_k8s_api_client(secrets)
    except (ConfigException, OSError, ValueError) as exc:
        raise ActivityFailed(f"cannot load the Kubernetes client configuration: {exc}") from exc
    with api_client:
        yield Cluster(api_client, request_timeout)


class Cluster:
    """Typed wrappers over the calls the activities need, and nothing else (see REQUIRED_RBAC)."""

    def __init__(self, api_client: Any, request_timeout: float) -> None:
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._net = client.NetworkingV1Api(api_client)
        self._host = str(api_client.configuration.host)
        self._timeout = (min(10.0, request_timeout), request_timeout)

    # -- reads -----------------------------------------------------------------------------
    def pod(self, namespace: str, name: str) -> Obj | None:
        """The pod, or None if there is no pod of that name."""
        return self._optional(
            f"get pod {namespace}/{name}",
            lambda **kw: self._core.read_namespaced_pod(name, namespace, **kw),
        )

    def find_node(self, name: str) -> Obj | None:
        """The node, or None if there is no node of that name."""
        return self._optional(f"get node {name}", lambda **kw: self._core.read_node(name, **kw))

    def node(self, name: str) -> Obj:
        found = self.find_node(name)
        if found is None:
            raise ActivityFailed(f"node {name} does not exist")
        return found

    def statefulset(self, namespace: str, name: str) -> Obj:
        found = self._optional(
            f"get statefulset {namespace}/{name}",
            lambda **kw: self._apps.read_namespaced_stateful_set(name, namespace, **kw),
        )
        if found is None:
            raise ActivityFailed(f"statefulset {namespace}/{name} does not exist")
        return found

    def network_policy(self, namespace: str, name: str) -> Obj | None:
        return self._optional(
            f"get networkpolicy {namespace}/{name}",
            lambda **kw: self._net.read_namespaced_network_policy(name, namespace, **kw),
        )

    # -- writes ----------------------------------------------------------------------------
    def create_pod(self, namespace: str, manifest: Obj) -> Obj | None:
        """Create the pod; None if a pod of that name already exists."""
        return self._create(
            f"create pod {namespace}/{manifest['metadata']['name']}",
            # A plain dict body: the client serializes it as it is, on every client version
            # (model classes gained model_validate only in v37).
            lambda **kw: self._core.create_namespaced_pod(
                namespace,
                manifest,  # type: ignore[arg-type]  # a dict body is serialized as it is
                **kw,
            ),
        )

    def create_network_policy(self, namespace: str, manifest: Obj) -> Obj | None:
        """Create the policy; None if one of that name already exists."""
        return self._create(
            f"create networkpolicy {namespace}/{manifest['metadata']['name']}",
            lambda **kw: self._net.create_namespaced_network_policy(
                namespace,
                manifest,  # type: ignore[arg-type]  # a dict body is serialized as it is
                **kw,
            ),
        )

    def delete_pod(self, namespace: str, name: str, uid: str, grace_seconds: int | None) -> bool:
        """Delete exactly the pod with `uid` (a precondition); False if that one is already gone.

        A replacement created meanwhile under the same name fails the precondition (409) instead
        of being deleted by mistake: incarnation `uid` is gone, which is what False says.
        """
        options = client.V1DeleteOptions(
            grace_period_seconds=grace_seconds, preconditions=client.V1Preconditions(uid=uid)
        )
        what = f"delete pod {namespace}/{name}"
        try:
            self._json(
                what,
                lambda **kw: self._core.delete_namespaced_pod(name, namespace, body=options, **kw),
                passthrough=(404, 409),
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 409 and "Precondition failed" in _describe(exc):
                logger.info(f"{what}: uid {uid} is gone, replaced meanwhile; left alone")
                return False
            raise ActivityFailed(f"{what} failed: {_describe(exc)}") from exc
        return True

    def delete_network_policy(self, namespace: str, name: str) -> bool:
        """Delete the policy; False if it was already gone."""
        found = self._optional(
            f"delete networkpolicy {namespace}/{name}",
            lambda **kw: self._net.delete_namespaced_network_policy(name, namespace, **kw),
        )
        return found is not None

    def replace_node_taints(self, node: Obj, taints: list[Obj]) -> Obj:
        """Write spec.taints if the node is still at the resourceVersion we read, else Conflict.

        The node lifecycle controller adds and removes its own taints on exactly the nodes we
        target, so a blind write could drop one of them; the json-patch `test` prevents that.
        """
        name = node["metadata"]["name"]
        patch = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": node["metadata"]["resourceVersion"],
            },
            {"op": "add", "path": "/spec/taints", "value": taints},
        ]
        try:
            return self._json(
                f"patch node {name}",
                lambda **kw: self._core.patch_node(
                    name, patch, _content_type="application/json-patch+json", **kw
                ),
            )
        except ApiException as exc:  # only conflicts get here, see _json
            raise Conflict(name) from exc

    # -- plumbing --------------------------------------------------------------------------
    def _optional(self, what: str, call: Callable[..., Any]) -> Obj | None:
        try:
            return self._json(what, call, passthrough=(404,))
        except ApiException:
            return None

    def _create(self, what: str, call: Callable[..., Any]) -> Obj | None:
        try:
            return self._json(what, call, passthrough=(409,))
        except ApiException:
            return None

    def _json(
        self, what: str, call: Callable[..., Any], passthrough: tuple[int, ...] = _CONFLICT
    ) -> Obj:
        """Run one API call and return its JSON body; ApiExceptions in `passthrough` propagate."""
        try:
            response = call(_preload_content=False, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status in passthrough:
                raise
            failure = (
                Unavailable if exc.status in (429,) or (exc.status or 0) >= 500 else ActivityFailed
            )
            raise failure(f"{what} failed: {_describe(exc)}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(
                f"{what} failed: cannot reach the Kubernetes API at {self._host}: {exc}"
            ) from exc
        body: Obj = json.loads(response.data)
        return body


def _describe(exc: ApiException) -> str:
    """HTTP status plus the message of the Status object the API server sent, on one line."""
    message = ""
    try:
        message = str(json.loads(exc.body or "{}").get("message", ""))
    except (ValueError, AttributeError):
        message = str(exc.body or "")
    hint = {
        401: " (check the kubeconfig credentials)",
        403: " (the chaos service account lacks a permission; see probes.kubernetes.REQUIRED_RBAC)",
    }.get(int(exc.status or 0), "")
    detail = f": {message}" if message else ""
    return " ".join(f"HTTP {exc.status} {exc.reason}{detail}{hint}".split())


def poll(condition: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Ask `condition` until it holds or `timeout` passes; API hiccups count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return True
        except Unavailable as exc:
            logger.debug(f"Kubernetes API unavailable, asking again: {exc}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))
