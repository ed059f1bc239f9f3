"""The cluster side of ``nats-config --cluster N`` and ``up --cluster N``.

``nats-config --cluster N --output DIR`` writes ``DIR/authorization.conf`` (the users, as
``nats-config`` writes them for one server) and ``DIR/node-<i>.conf`` for each node, which
includes it: the users must be the same on every node, so they live in one file that is
copied as is, while each node's own file holds its name, ports, routes and store.

``up --cluster N`` starts N embedded nodes on loopback ports and gives each child (the
plugins, in name order, then the orchestrator replicas) a URL listing every node, a
different one first, so that work crosses node boundaries.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

import typer

from jira_orchestrator.cli._errors import EXIT_USAGE, fail
from jira_orchestrator.cli._files import write_text
from jira_orchestrator.orchestrator.natsconfig import NatsUser
from jira_orchestrator.transports.nats_cluster import (
    NatsCluster,
    cluster_node_config,
    cluster_nodes,
    cluster_url,
    stream_replicas,
)

__all__ = [
    "MAX_LOCAL_NODES",
    "check_local_size",
    "spread_urls",
    "start_local_cluster",
    "write_cluster_config",
]

MAX_LOCAL_NODES = 7


def check_local_size(size: int, bus: str | None = None) -> None:
    """``up --cluster``'s size: odd (a JetStream cluster of 2 or 4 stops when one node
    is down: its leader needs a majority), 3 to 7, and no ``--bus``; exit 2 otherwise."""
    if bus is not None:
        raise fail(
            "--cluster starts its own nodes; with --bus, list your cluster's nodes in "
            "the URL instead (nats://a:4222,nats://b:4222,...?replicas=3)",
            EXIT_USAGE,
        )
    if size < 3 or size > MAX_LOCAL_NODES or size % 2 == 0:
        raise fail(
            f"--cluster {size}: up runs a cluster of 3, 5 or 7 nodes (an odd number, so "
            "that losing one node leaves a majority to elect JetStream's leaders)",
            EXIT_USAGE,
        )


def write_cluster_config(
    size: int, output: Path | None, hosts: str | None, authorization: str, users: int
) -> None:
    """``nats-config --cluster``: the node files and the shared users file in ``output``."""
    if size < 1:
        raise fail(f"--cluster {size}: a cluster has at least 1 node", EXIT_USAGE)
    if output is None:
        raise fail(
            "--cluster needs --output FOLDER: it writes one file per node and one of users",
            EXIT_USAGE,
        )
    names: Sequence[str] = [h.strip() for h in hosts.split(",")] if hosts else ()
    try:
        nodes = cluster_nodes(size, names)
    except ValueError as error:
        raise fail(f"--hosts: {error}", EXIT_USAGE) from None
    if output.exists() and not output.is_dir():
        raise fail(f"--output {output}: not a folder", EXIT_USAGE)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise fail(f"--output {output}: {error.strerror or error}", EXIT_USAGE) from None
    route_password = secrets.token_urlsafe(18)
    write_text(output / "authorization.conf", authorization, private=True)
    for index, node in enumerate(nodes, start=1):
        text = cluster_node_config(node, nodes, route_password=route_password)
        write_text(output / f"node-{index}.conf", text, private=True)
    replicas = stream_replicas(size)
    typer.echo(
        f"wrote {output}: node-1.conf .. node-{size}.conf and authorization.conf "
        f"({users} users); start node i with `nats-server -c node-i.conf` on its host",
        err=True,
    )
    typer.echo(
        "clients: " + cluster_url(nodes, query=f"replicas={replicas}") + " (rotate the list "
        "so that each process starts on another node; add each one's user:password@, and "
        "&jetstream=bind for a plugin)",
        err=True,
    )
    if size % 2 == 0:
        typer.echo(
            f"warning: a cluster of {size} nodes stops JetStream when one node is down "
            "(its leader needs a majority); an odd size is safer",
            err=True,
        )


def start_local_cluster(directory: Path, size: int, authorization: str) -> NatsCluster:
    """``up --cluster``'s nodes, started, each knowing its JetStream leader."""
    return NatsCluster(directory, size=size, extra_config=authorization).start()


def spread_urls(
    cluster: NatsCluster, users: Sequence[NatsUser], order: Sequence[str]
) -> dict[str, str]:
    """Each process's URL, with its user's credentials: the ``i``-th of ``order`` starts
    on node ``i`` modulo the size, the other nodes being its fallbacks."""
    passwords = {user.name: user.password for user in users}
    return {
        name: cluster.url_for(name, passwords[name], first=index)
        for index, name in enumerate(order)
        if name in passwords
    }
