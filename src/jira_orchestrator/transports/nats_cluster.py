"""A NATS cluster: the configuration of N nodes, and a local one on loopback ports.

`cluster_node_config` writes one node's configuration: its name, client and route
listeners, the routes to every other node, JetStream and an ``include`` of the shared
``authorization`` block (identical on every node, so it lives in one file).
`NatsCluster` runs N embedded servers (`jira_orchestrator.transports.nats_server`) on
127.0.0.1, for ``jira-orchestrator up --cluster`` and the tests: each node can be killed
and restarted on its ports with its JetStream store, and `url_for` gives each client a URL
that tries its own node first and the others after it.

JetStream streams are replicated by the clients that create them: the bus URL's
``replicas`` option (``replicas=3`` for a cluster of 3 or more, `stream_replicas`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from jira_orchestrator.transports.nats_server import START_TIMEOUT, NatsServer, free_port

__all__ = [
    "CLIENT_PORT",
    "ROUTE_PORT",
    "ClusterNode",
    "NatsCluster",
    "cluster_node_config",
    "cluster_nodes",
    "cluster_url",
    "stream_replicas",
]

CLIENT_PORT = 4222
ROUTE_PORT = 6222
ROUTE_USER = "jo-route"
MAX_REPLICAS = 3  # JetStream's largest replication factor worth having (R3 is its advice)


def stream_replicas(size: int) -> int:
    """The replication factor of the streams on a cluster of ``size`` nodes: ``size`` up
    to 3 (a stream on 3 nodes survives one lost node; more replicas only cost)."""
    if size < 1:
        raise ValueError(f"a cluster has at least 1 node, not {size}")
    return min(size, MAX_REPLICAS)


@dataclass(frozen=True)
class ClusterNode:
    """One node of a cluster: its name, host and ports."""

    name: str
    host: str
    client_port: int
    route_port: int

    @property
    def route(self) -> str:
        return f"nats-route://{self.host}:{self.route_port}"


def cluster_nodes(size: int, hosts: Sequence[str] = (), *, name: str = "jo") -> list[ClusterNode]:
    """``size`` nodes on ``hosts`` (default ``nats-1`` .. ``nats-N``), on the standard
    ports 4222 and 6222; nodes sharing a host get the next ports (4223, 6223, ...)."""
    if size < 1:
        raise ValueError(f"a cluster has at least 1 node, not {size}")
    chosen = list(hosts) or [f"nats-{i}" for i in range(1, size + 1)]
    if len(chosen) != size:
        raise ValueError(f"{len(chosen)} host(s) given for a cluster of {size} nodes")
    nodes = []
    seen: dict[str, int] = {}
    for index, host in enumerate(chosen, start=1):
        if not host or any(c in host for c in " ,/@"):
            raise ValueError(f"host {index} is not a host name: {host!r}")
        offset = seen.get(host, 0)
        seen[host] = offset + 1
        nodes.append(
            ClusterNode(f"{name}-{index}", host, CLIENT_PORT + offset, ROUTE_PORT + offset)
        )
    return nodes


def cluster_node_config(
    node: ClusterNode,
    nodes: Sequence[ClusterNode],
    *,
    cluster_name: str = "jo",
    route_password: str | None = None,
    store_dir: str | None = None,
    include: str | None = "authorization.conf",
    listen_host: str = "0.0.0.0",
) -> str:
    """The configuration file of ``node`` in a cluster of ``nodes``.

    Routes are authenticated with ``route_password`` when given (user ``jo-route``; every
    node must have the same one). ``include`` names the file holding the users (relative
    to this one); None leaves it out.
    """
    auth = ""
    credentials = ""
    if route_password is not None:
        auth = (
            f"  authorization {{ user: {json.dumps(ROUTE_USER)}, "
            f"password: {json.dumps(route_password)} }}\n"
        )
        credentials = f"{quote(ROUTE_USER, safe='')}:{quote(route_password, safe='')}@"
    routes = ",\n".join(
        f"    {json.dumps(other.route.replace('://', '://' + credentials, 1))}"
        for other in nodes
        if other != node
    )
    store = store_dir or f"/var/lib/nats/{node.name}"
    lines = [
        f"# {node.name}: node of the NATS cluster {cluster_name!r} ({len(nodes)} nodes)",
        f"server_name: {json.dumps(node.name)}",
        f"listen: {json.dumps(f'{listen_host}:{node.client_port}')}",
        "max_payload: 8MB",
        f"jetstream {{ store_dir: {json.dumps(store)} }}",
        "cluster {",
        f"  name: {json.dumps(cluster_name)}",
        f"  listen: {json.dumps(f'{listen_host}:{node.route_port}')}",
        auth.rstrip("\n"),
        "  routes = [",
        routes,
        "  ]",
        "}",
    ]
    if include is not None:
        lines.append(f"include {json.dumps(include)}")
    return "\n".join(line for line in lines if line) + "\n"


def cluster_url(nodes: Sequence[ClusterNode], *, first: int = 0, query: str = "") -> str:
    """A bus URL listing every node's client address, ``nodes[first]`` first."""
    ordered = [*nodes[first:], *nodes[:first]]
    address = ",".join(f"nats://{n.host}:{n.client_port}" for n in ordered)
    return address + (f"?{query}" if query else "")


class NatsCluster:
    """``size`` nats-servers on 127.0.0.1 forming one JetStream cluster.

    ``extra_config`` (an ``authorization`` block) goes into every node's configuration.
    Node ``i`` (0-based) lives in ``directory/node-<i+1>``; `kill`, `restart` and
    `start_node` act on one node, which comes back on its ports with its store.
    """

    def __init__(
        self, directory: Path, *, size: int = 3, extra_config: str = "", name: str = "jo"
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster has at least 1 node, not {size}")
        self.directory = directory
        self.size = size
        self.name = name
        self.extra_config = extra_config
        self.route_password = secrets.token_urlsafe(18)
        self.nodes: list[NatsServer] = []
        self._route_ports: list[int] = []
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def replicas(self) -> int:
        """The streams' replication factor on this cluster."""
        return stream_replicas(self.size)

    def _plan(self) -> None:
        ports: set[int] = set()
        while len(ports) < 2 * self.size:
            ports.add(free_port())
        chosen = sorted(ports)
        client_ports, self._route_ports = chosen[: self.size], chosen[self.size :]
        described = [
            ClusterNode(f"{self.name}-{i + 1}", "127.0.0.1", client_ports[i], self._route_ports[i])
            for i in range(self.size)
        ]
        self.nodes = []
        for index, node in enumerate(described):
            cluster = cluster_node_config(
                node,
                described,
                cluster_name=self.name,
                route_password=self.route_password,
                include=None,
                listen_host="127.0.0.1",
            )
            # the node's own block, without what NatsServer writes itself
            kept = [
                line
                for line in cluster.splitlines()
                if not line.startswith(("listen:", "max_payload:", "jetstream", "#"))
            ]
            config = "\n".join(kept) + ("\n" + self.extra_config if self.extra_config else "")
            self.nodes.append(
                NatsServer(
                    self.directory / f"node-{index + 1}",
                    port=node.client_port,
                    extra_config=config,
                )
            )

    def start(self) -> NatsCluster:
        """Start every node; return once each accepts clients and knows the JetStream
        leader (streams can be created then)."""
        for attempt in range(3):
            self._plan()
            offsets = [_size(node.log) for node in self.nodes]
            try:
                for node in self.nodes:
                    node.start()
                for node, offset in zip(self.nodes, offsets, strict=True):
                    _wait_for_leader(node, offset)
                return self
            except RuntimeError:
                self.kill()
                for node in self.nodes:  # a half-formed cluster's stores go with it
                    _remove_store(node)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def url_for(
        self, user: str | None = None, password: str | None = None, *, first: int = 0
    ) -> str:
        """A client URL of every node, node ``first`` (modulo the size) first, with the
        credentials of ``user`` if given and the streams' ``replicas`` option."""
        credentials = (
            "" if user is None else f"{quote(user, safe='')}:{quote(password or '', safe='')}@"
        )
        start = first % self.size
        ordered = [*self.nodes[start:], *self.nodes[:start]]
        address = ",".join(f"nats://{credentials}127.0.0.1:{node.port}" for node in ordered)
        return f"{address}?replicas={self.replicas}"

    @property
    def url(self) -> str:
        return self.url_for()

    def kill_node(self, index: int) -> None:
        """SIGKILL one node."""
        self.nodes[index].kill()

    def restart_node(self, index: int) -> None:
        """Start one node again (after a kill) on its ports, with its JetStream store;
        return once it has rejoined (knows the JetStream leader)."""
        node = self.nodes[index]
        offset = _size(node.log)
        node.restart()
        _wait_for_leader(node, offset)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


_LEADER_LINES = (b"new metadata leader", b"Self is new JetStream cluster metadata leader")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _wait_for_leader(node: NatsServer, offset: int, timeout: float = START_TIMEOUT * 2) -> None:
    """Until ``node``'s log (after ``offset``) says it knows the JetStream leader."""
    deadline = time.monotonic() + timeout
    while True:
        with node.log.open("rb") as log:
            log.seek(offset)
            said = log.read()
        if any(line in said for line in _LEADER_LINES):
            return
        if node.process is None or node.process.poll() is not None:
            raise RuntimeError(f"nats-server node {node.url} exited while joining its cluster")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"nats-server node {node.url} found no JetStream leader in {timeout:g}s"
            )
        time.sleep(0.01)  # polling another process's log, bounded by the deadline


def _remove_store(node: NatsServer) -> None:
    import shutil

    shutil.rmtree(node.directory / "jetstream", ignore_errors=True)
