"""A small Kubernetes API server for tests: real HTTP on 127.0.0.1, objects from fixtures.

The fixtures (tests/k8s/fixtures/*.json) are not recordings of a cluster: they are
reconstructions from the documented API, generated from this project's own manifests by
tests/k8s/fixtures/build.py (see tests/k8s/fixtures/README.md).

It speaks just enough of the API for the real `kubernetes` client: GET/LIST (equality label and
field selectors), POST, PUT, PATCH (json-patch, merge-patch, strategic-merge-patch for the fields
the probes touch), DELETE with DeleteOptions (preconditions, grace period). Every request is
recorded with its method, path, query, headers and parsed body so tests can assert exactly what
was sent. It refuses what a real API server refuses (upstream
staging/src/k8s.io/apiserver/pkg/registry/rest/update.go `BeforeUpdate`,
staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go
`ValidateObjectMetaAccessorUpdate`, staging/src/k8s.io/apiserver/pkg/registry/generic/registry/
store.go `Update`): every write moves the resourceVersion and a write carrying a stale one is a
409 Conflict; a UID never changes and is never given to a second object; an update cannot
remove or change a deletionTimestamp (the server keeps it) nor set one (422 Invalid). `put()`,
the tests' own write, raises ApiError on all of these, so a test cannot build a state the
cluster never reaches.

State changes on a test's command (`apply`), once a matching request was answered with a given
state (`when`), just before a matching request is handled (`before`: a race won by another
writer), or after the N-th matching request (`after`), so tests wait on conditions instead of
sleeping.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures"

Obj = dict[str, Any]
Key = tuple[str, str | None, str]  # (resource, namespace or None, name)

# resource plural -> (group, version, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, str, bool]] = {
    "nodes": ("", "v1", "Node", False),
    "namespaces": ("", "v1", "Namespace", False),
    "pods": ("", "v1", "Pod", True),
    "statefulsets": ("apps", "v1", "StatefulSet", True),
    "networkpolicies": ("networking.k8s.io", "v1", "NetworkPolicy", True),
}
PLURAL_OF_KIND = {kind: plural for plural, (_, _, kind, _) in RESOURCES.items()}

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)


@dataclass(frozen=True)
class Route:
    """What a request path addresses, in the terms RBAC uses."""

    group: str
    version: str
    namespace: str | None
    resource: str
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Route | None:
    """Split an API path into group, namespace, resource, name and subresource."""
    match = _PATH.match(path)
    if not match:
        return None
    core = match.group("core")
    return Route(
        group="" if core else match.group("group"),
        version=core or match.group("version"),
        namespace=match.group("ns"),
        resource=match.group("resource"),
        name=match.group("name"),
        subresource=match.group("sub"),
    )


def rbac_verb(method: str, route: Route, query: dict[str, list[str]]) -> str:
    """The RBAC verb the API server would authorize for this request."""
    if method == "GET":
        if route.name:
            return "get"
        return "watch" if query.get("watch", ["false"])[0] in ("true", "1") else "list"
    if method == "DELETE" and not route.name:
        return "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]


@dataclass(frozen=True)
class Request:
    """One recorded request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    @property
    def mutating(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class _Trigger:
    method: str
    path: str
    remaining: int
    action: Callable[[FakeKubeAPI], object]
    # `when`: fire once an answer satisfies this; `before`: fire before the request is handled.
    answered: Callable[[int, Obj], bool] | None = None
    before: bool = False


# A fixture's List may name objects that are gone at that point (deleted by a controller):
# metadata.annotations[DELETED] is a JSON list of {"resource", "namespace", "name", "uid"}.
DELETED = "fixture.deleted"


def load_fixture(name: str) -> list[Obj]:
    """Objects of one fixture file (a v1 List)."""
    document = json.loads((FIXTURES / f"{name}.json").read_text())
    items: list[Obj] = document["items"]
    return items


def fixture_deletions(name: str) -> list[dict[str, str]]:
    """The objects a fixture says are gone by then: resource, namespace, name and uid."""
    document = json.loads((FIXTURES / f"{name}.json").read_text())
    annotations = document.get("metadata", {}).get("annotations", {})
    gone: list[dict[str, str]] = json.loads(annotations.get(DELETED, "[]"))
    return gone


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An API failure answered as a v1 Status object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass
class FakeKubeAPI:
    """In-memory object store behind a threaded HTTP server on an ephemeral loopback port."""

    objects: dict[Key, Obj] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _triggers: list[_Trigger] = field(default_factory=list)
    _denied: set[tuple[str, str]] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)  # bugs in the fake itself, answered 500
    _uids: dict[str, Key] = field(default_factory=dict)  # every UID ever given, never reused
    _resource_version: int = 1000
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeKubeAPI:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- state -----------------------------------------------------------------------------
    def load(self, *fixtures: str) -> FakeKubeAPI:
        """Move the cluster to the named fixtures' states, in order (later ones overlay earlier).

        A fixture is what the controllers wrote: the objects it names as deleted go (if still
        there with that UID), then its objects are written unconditionally (the server assigns
        the resourceVersion), with every refusal of `put` applying.
        """
        with self._lock:
            for name in fixtures:
                for gone in fixture_deletions(name):
                    key = (gone["resource"], gone.get("namespace"), gone["name"])
                    current = self.objects.get(key)
                    if current is not None and current["metadata"]["uid"] == gone["uid"]:
                        del self.objects[key]
                for item in load_fixture(name):
                    written = copy.deepcopy(item)
                    written["metadata"].pop("resourceVersion", None)
                    self.put(written)
        return self

    def put(self, obj: Obj) -> None:
        """Write `obj` as a controller would (create or update); ApiError where a server refuses.

        Without a resourceVersion the write is unconditional; with one it must be the current
        one. An update keeps the object's UID and cannot clear or change a deletionTimestamp
        (setting one stands for a graceful delete); a create cannot take a UID any object ever
        had.
        """
        with self._lock:
            obj = copy.deepcopy(obj)
            key = self._key_of(obj)
            meta = obj["metadata"]
            current = self.objects.get(key)
            if current is None:
                meta.setdefault("uid", str(uuid.uuid4()))
                self._claim_uid(meta["uid"], key)
            else:
                self._check_update(current, obj, by_test=True)
            meta["resourceVersion"] = self._next_version()
            self.objects[key] = obj

    def get(self, resource: str, name: str, namespace: str | None = None) -> Obj | None:
        with self._lock:
            found = self.objects.get((resource, namespace, name))
            return copy.deepcopy(found)

    def remove(self, resource: str, name: str, namespace: str | None = None) -> None:
        with self._lock:
            self.objects.pop((resource, namespace, name), None)

    def apply(self, change: Callable[[FakeKubeAPI], None]) -> None:
        """Change the cluster state now (the test's command)."""
        with self._lock:
            change(self)

    def after(
        self, count: int, method: str, path: str, change: Callable[[FakeKubeAPI], None]
    ) -> None:
        """Change the state once `count` requests `method path` have been answered."""
        with self._lock:
            self._triggers.append(_Trigger(method, path, count, change))

    def when(
        self,
        method: str,
        path: str,
        answered: Callable[[int, Obj], bool],
        change: Callable[[FakeKubeAPI], object],
    ) -> None:
        """Change the state once, after a `method path` answer (code, body) satisfied `answered`.

        The transition depends on what the client has seen, not on how many requests it took.
        """
        with self._lock:
            self._triggers.append(_Trigger(method, path, 1, change, answered=answered))

    def before(self, method: str, path: str, change: Callable[[FakeKubeAPI], object]) -> None:
        """Change the state once, just before the next `method path` is handled.

        A race another writer wins between the client's read and its write.
        """
        with self._lock:
            self._triggers.append(_Trigger(method, path, 1, change, before=True))

    def deny(self, method: str, path: str) -> None:
        """Answer `method path` with 403 Forbidden, as RBAC would without the grant."""
        with self._lock:
            self._denied.add((method, path))

    def requests_for(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def mutating_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.mutating]

    # -- request handling ------------------------------------------------------------------
    def handle(self, request: Request) -> tuple[int, Obj]:
        with self._lock:
            self.requests.append(request)
            try:
                self._fire_triggers(request, before=True)
            except Exception as exc:  # a broken test trigger must fail the test, not the socket
                self.errors.append(f"trigger before {request.method} {request.path}: {exc!r}")
            try:
                if (request.method, request.path) in self._denied:
                    raise ApiError(
                        403, "Forbidden", f"{request.method} {request.path} is forbidden"
                    )
                answer = self._dispatch(request)
            except ApiError as error:
                answer = (error.code, error.status())
            except Exception as exc:  # a bug in the fake must fail the test, not hang it
                self.errors.append(f"{request.method} {request.path}: {exc!r}")
                answer = (500, ApiError(500, "InternalError", repr(exc)).status())
            try:
                self._fire_triggers(request, answer=answer)
            except Exception as exc:  # a broken test trigger must fail the test, not the socket
                self.errors.append(f"trigger after {request.method} {request.path}: {exc!r}")
            return answer

    def _fire_triggers(
        self, request: Request, *, before: bool = False, answer: tuple[int, Obj] | None = None
    ) -> None:
        for trigger in list(self._triggers):
            if (trigger.method, trigger.path) != (request.method, request.path):
                continue
            if trigger.before != before:
                continue
            if trigger.answered is not None and not (
                answer is not None and trigger.answered(*answer)
            ):
                continue
            trigger.remaining -= 1
            if trigger.remaining <= 0:
                self._triggers.remove(trigger)
                trigger.action(self)

    def _dispatch(self, request: Request) -> tuple[int, Obj]:
        route = parse_path(request.path)
        if route is None or route.resource not in RESOURCES or route.subresource:
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({request.path})",
            )
        group, version, _, namespaced = RESOURCES[route.resource]
        if (route.group, route.version) != (group, version) or namespaced != (
            route.namespace is not None
        ):
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({request.path})",
            )
        verb = rbac_verb(request.method, route, request.query)
        if verb == "watch":
            raise ApiError(405, "MethodNotAllowed", "watch is not supported by the fake API server")
        handlers: dict[str, Callable[[Route, Request], tuple[int, Obj]]] = {
            "get": self._get,
            "list": self._list,
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
        }
        if verb not in handlers:
            raise ApiError(
                405, "MethodNotAllowed", f"{verb} is not supported by the fake API server"
            )
        return handlers[verb](route, request)

    def _existing(self, route: Route) -> Obj:
        assert route.name is not None
        found = self.objects.get((route.resource, route.namespace, route.name))
        if found is None:
            raise ApiError(404, "NotFound", f'{route.resource} "{route.name}" not found')
        return found

    def _get(self, route: Route, request: Request) -> tuple[int, Obj]:
        return 200, copy.deepcopy(self._existing(route))

    def _list(self, route: Route, request: Request) -> tuple[int, Obj]:
        labels = _selector(request.query.get("labelSelector", [""])[0])
        fields = _selector(request.query.get("fieldSelector", [""])[0])
        items = [
            copy.deepcopy(obj)
            for (resource, namespace, _), obj in sorted(
                self.objects.items(), key=lambda kv: kv[0][2]
            )
            if resource == route.resource
            and (route.namespace is None or namespace == route.namespace)
            and _matches_labels(obj, labels)
            and _matches_fields(obj, fields)
        ]
        _, version, kind, _ = RESOURCES[route.resource]
        api_version = f"{route.group}/{version}" if route.group else version
        return 200, {
            "kind": f"{kind}List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(self._resource_version)},
            "items": items,
        }

    def _create(self, route: Route, request: Request) -> tuple[int, Obj]:
        obj = copy.deepcopy(request.body)
        if not isinstance(obj, dict) or "metadata" not in obj:
            raise ApiError(400, "BadRequest", "body is not an object with metadata")
        meta = obj["metadata"]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if route.namespace is not None:
            if meta.get("namespace", route.namespace) != route.namespace:
                raise ApiError(
                    400, "BadRequest", "the namespace of the object does not match the request"
                )
            meta["namespace"] = route.namespace
        key = (route.resource, route.namespace, name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{route.resource} "{name}" already exists')
        meta["uid"] = str(uuid.uuid4())  # the server's, whatever the body said
        self._claim_uid(meta["uid"], key)
        meta["creationTimestamp"] = now()
        meta["resourceVersion"] = self._next_version()
        meta.setdefault("generation", 1)
        if route.resource == "pods":
            obj.setdefault("status", {"phase": "Pending", "qosClass": "Burstable"})
        self.objects[key] = obj
        return 201, copy.deepcopy(obj)

    def _patch(self, route: Route, request: Request) -> tuple[int, Obj]:
        current = self._existing(route)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type == "application/json-patch+json":
            patched = apply_json_patch(current, request.body)
        elif content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            # Strategic merge replaces lists that have no patch merge key, which is what
            # Node spec.taints is; the fake does not implement merge keys or $patch directives.
            if _has_directives(request.body):
                raise ApiError(
                    415, "UnsupportedMediaType", "strategic merge directives are not supported"
                )
            patched = merge_patch(current, request.body)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, "
                f"application/strategic-merge-patch+json (got {content_type})",
            )
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise ApiError(422, "Invalid", "metadata: Required value")
        # A patch is applied to the stored object, so it is an update at the stored version
        # unless the patch itself names another resourceVersion.
        patched["metadata"].setdefault("resourceVersion", current["metadata"]["resourceVersion"])
        self._check_update(current, patched, by_test=False)
        patched["metadata"]["resourceVersion"] = self._next_version()
        self.objects[(route.resource, route.namespace, route.name or "")] = patched
        return 200, copy.deepcopy(patched)

    def _update(self, route: Route, request: Request) -> tuple[int, Obj]:
        """PUT: replace the object; preconditions and immutable fields as the API server."""
        current = self._existing(route)
        obj = copy.deepcopy(request.body)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise ApiError(400, "BadRequest", "body is not an object with metadata")
        meta = obj["metadata"]
        if meta.get("name") != route.name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the request")
        if route.namespace is not None:
            meta["namespace"] = route.namespace
        uid = meta.get("uid")
        if uid and uid != current["metadata"]["uid"]:
            # rest.DefaultUpdatedObjectInfo turns a UID in the body into a precondition.
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {uid}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        if not meta.get("resourceVersion"):
            meta.pop("resourceVersion", None)  # unconditional update (pods, nodes allow it)
        self._check_update(current, obj, by_test=False)
        meta["resourceVersion"] = self._next_version()
        self.objects[(route.resource, route.namespace, route.name or "")] = obj
        return 200, copy.deepcopy(obj)

    def _check_update(self, current: Obj, new: Obj, *, by_test: bool) -> None:
        """What the API server checks on every update; fixes up `new` where it would.

        A request that removes or changes a deletionTimestamp gets it back (upstream
        BeforeUpdate does so silently) and one that sets it is 422 Invalid. A test's own write
        (`by_test`, through `put`) that removes it raises instead: it encodes a state
        Kubernetes never reaches; one that sets it stands for a graceful DELETE (a controller's
        eviction) and is allowed.
        """
        old, meta = current["metadata"], new["metadata"]
        wanted = meta.get("resourceVersion")
        if wanted is not None and str(wanted) != old["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {old['name']}: the object has been modified; "
                "please apply your changes to the latest version and try again "
                f"(resourceVersion {wanted}, stored {old['resourceVersion']})",
            )
        meta.setdefault("uid", old["uid"])
        if meta["uid"] != old["uid"]:
            raise ApiError(
                422,
                "Invalid",
                f'{old["name"]} is invalid: metadata.uid: Invalid value: "{meta["uid"]}": '
                f"field is immutable (stored {old['uid']}; a new incarnation needs a delete "
                "and a create)",
            )
        if "creationTimestamp" in old:
            meta["creationTimestamp"] = old["creationTimestamp"]
        deleting = old.get("deletionTimestamp")
        if deleting and meta.get("deletionTimestamp") != deleting:
            if by_test:
                raise ApiError(
                    422,
                    "Invalid",
                    f"{old['name']} is invalid: metadata.deletionTimestamp: an update can never "
                    f"remove or change a deletion timestamp (stored {deleting})",
                )
            meta["deletionTimestamp"] = deleting
        if deleting and "deletionGracePeriodSeconds" in old:
            meta.setdefault("deletionGracePeriodSeconds", old["deletionGracePeriodSeconds"])
        if not deleting and meta.get("deletionTimestamp") and not by_test:
            raise ApiError(
                422,
                "Invalid",
                f"{old['name']} is invalid: metadata.deletionTimestamp: Invalid value: "
                f'"{meta["deletionTimestamp"]}": field is immutable (only a delete sets it)',
            )

    def _claim_uid(self, uid: str, key: Key) -> None:
        """A UID names one object for ever: refuse one that any object had before."""
        if uid in self._uids:
            raise ApiError(
                409,
                "AlreadyExists",
                f"uid {uid} already belonged to {'/'.join(filter(None, self._uids[uid]))}; "
                "the server gives every new object a fresh UID",
            )
        self._uids[uid] = key

    def _delete(self, route: Route, request: Request) -> tuple[int, Obj]:
        current = self._existing(route)
        options = request.body if isinstance(request.body, dict) else {}
        preconditions = options.get("preconditions") or {}
        meta = current["metadata"]
        if preconditions.get("uid") not in (None, meta["uid"]):
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {meta['uid']}",
            )
        if preconditions.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise ApiError(409, "Conflict", "Precondition failed: resourceVersion")
        grace = options.get("gracePeriodSeconds")
        if grace is None and "gracePeriodSeconds" in request.query:
            grace = int(request.query["gracePeriodSeconds"][0])
        key = (route.resource, route.namespace, route.name or "")
        if route.resource == "pods" and _waits_for_kubelet(current, grace):
            # A bound, running pod deleted gracefully stays until its kubelet confirms.
            meta.setdefault("deletionTimestamp", now())
            meta["deletionGracePeriodSeconds"] = grace if grace is not None else 30
            meta["resourceVersion"] = self._next_version()
            return 200, copy.deepcopy(current)
        del self.objects[key]
        return 200, copy.deepcopy(current)

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    @staticmethod
    def _key_of(obj: Obj) -> Key:
        plural = PLURAL_OF_KIND[obj["kind"]]
        namespaced = RESOURCES[plural][3]
        meta = obj["metadata"]
        return plural, meta.get("namespace") if namespaced else None, meta["name"]


def _waits_for_kubelet(pod: Obj, grace: int | None) -> bool:
    terminal = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
    bound = bool(pod.get("spec", {}).get("nodeName"))
    return grace != 0 and bound and not terminal


def _has_directives(patch: Any) -> bool:
    if isinstance(patch, dict):
        return any(str(k).startswith("$") or _has_directives(v) for k, v in patch.items())
    if isinstance(patch, list):
        return any(_has_directives(v) for v in patch)
    return False


def _selector(text: str) -> list[tuple[str, str, bool]]:
    """Equality-based selectors only (`a=b`, `a==b`, `a!=b`), which is all the client sends here."""
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key, value, False))
        else:
            key, value = re.split("==?", term, maxsplit=1)
            terms.append((key, value, True))
    return terms


def _matches_labels(obj: Obj, terms: Iterable[tuple[str, str, bool]]) -> bool:
    labels = obj["metadata"].get("labels", {})
    return all((labels.get(k) == v) == equal for k, v, equal in terms)


def _matches_fields(obj: Obj, terms: Iterable[tuple[str, str, bool]]) -> bool:
    def lookup(path: str) -> Any:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return value

    return all((lookup(k) == v) == equal for k, v, equal in terms)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_json_patch(target: Obj, operations: Any) -> Obj:
    """RFC 6902 JSON patch: add, remove, replace and test."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "json patch body must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        parent, last = _resolve(doc, op["path"])
        kind = op["op"]
        if kind == "test":
            if _child(parent, last) != op["value"]:
                raise ApiError(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request: "
                    f"test failed at {op['path']}",
                )
        elif kind == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif kind == "replace":
            _child(parent, last)
            parent[int(last) if isinstance(parent, list) else last] = op["value"]
        elif kind == "remove":
            _child(parent, last)
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise ApiError(400, "BadRequest", f"unsupported json patch operation {kind}")
    return doc


def _resolve(doc: Any, pointer: str) -> tuple[Any, str]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node = doc
    for part in parts[:-1]:
        node = _child(node, part)
    return node, parts[-1]


def _child(node: Any, part: str) -> Any:
    try:
        return node[int(part)] if isinstance(node, list) else node[part]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, "Invalid", f"json patch path not found: {part}") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The client drops keep-alive connections when it closes; that is not a test failure.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    api: FakeKubeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        code, answer = self.api.handle(request)
        payload = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve
