"""The fleet view: which processes run on which hosts in which regions, each deployment's traffic per host, and
a region's health for the map. Pure: the store's process rows and per-host buckets in, records out (`views`
turns them into the API's camelCase).

A process is alive when it wrote (or refreshed its row) in the last ALIVE_S seconds. A host is healthy when a
process of it is alive and fewer than 5 % of its requests over the range were server errors; a region is healthy
when all its hosts are. Processes last seen before the range starts are left out, so a host that went away
drops off the view once the range has passed it by.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from yolowatch.metrics import bucket_metrics, merged
from yolowatch.records import Bucket
from yolowatch.regions import parse_region

ALIVE_S = 90
MAX_SERVER_ERROR_RATE = 0.05  # at or above it, a host is unhealthy


@dataclass(frozen=True)
class FleetProcess:
    writer: str
    host: str
    pid: int
    kind: str
    region: str | None
    latitude: float | None
    longitude: float | None
    version: str
    started_s: int
    seen_s: int
    alive: bool


@dataclass(frozen=True)
class HostTraffic:
    """One host's share of one deployment's traffic over the range."""

    host: str
    region: str | None
    processes: int  # alive now
    seen_s: int | None  # the host's last sign of life; None when no process row names it
    requests: int
    share: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float
    server_error_rate: float
    healthy: bool


@dataclass(frozen=True)
class DeploymentHosts:
    id: str
    name: str
    hosts: list[HostTraffic]


@dataclass(frozen=True)
class FleetRegion:
    region: str
    latitude: float | None
    longitude: float | None
    hosts: int
    requests: int
    p95_ms: float | None
    healthy: bool


@dataclass(frozen=True)
class Fleet:
    processes: list[FleetProcess]
    deployments: list[DeploymentHosts]
    regions: list[FleetRegion]


def located(row: Mapping[str, Any]) -> tuple[str | None, float | None, float | None]:
    """A process row's region and coordinates: its own, else what its region's text says (a known region's name,
    LAT,LON or NAME@LAT,LON, as `--region` takes them)."""
    region = row.get("region") or None
    if row.get("latitude") is not None and row.get("longitude") is not None:
        return region, float(row["latitude"]), float(row["longitude"])
    if region is not None:
        with contextlib.suppress(ValueError):  # a name the table does not know: listed, not on the map
            parsed = parse_region(region)
            return parsed.name, parsed.latitude, parsed.longitude
    return region, None, None


def fleet_processes(rows: Iterable[Mapping[str, Any]], now_s: int, start_s: int) -> list[FleetProcess]:
    """The processes seen since `start_s`, by host and start."""
    processes = []
    for row in rows:
        if row["seen_s"] < start_s:
            continue
        region, latitude, longitude = located(row)
        processes.append(
            FleetProcess(
                writer=row["writer"],
                host=row["host"],
                pid=int(row["pid"]),
                kind=row["kind"],
                region=region,
                latitude=latitude,
                longitude=longitude,
                version=row["version"] or "",
                started_s=int(row["started_s"]),
                seen_s=int(row["seen_s"]),
                alive=now_s - row["seen_s"] <= ALIVE_S,
            )
        )
    return sorted(processes, key=lambda p: (p.host, p.started_s, p.writer))


@dataclass
class _Host:
    """What the processes say about one host: its latest process's region, how many are alive, last seen."""

    region: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    alive: int = 0
    seen_s: int = 0


def _hosts(processes: list[FleetProcess]) -> dict[str, _Host]:
    hosts: dict[str, _Host] = {}
    for process in sorted(processes, key=lambda p: p.seen_s):  # the latest process's region wins
        host = hosts.setdefault(process.host, _Host())
        host.alive += process.alive
        host.seen_s = process.seen_s
        if process.region is not None:
            host.region, host.latitude, host.longitude = process.region, process.latitude, process.longitude
    return hosts


def _healthy(host: _Host | None, bucket: Bucket) -> bool:
    return host is not None and host.alive > 0 and _server_error_rate(bucket) < MAX_SERVER_ERROR_RATE


def _server_error_rate(bucket: Bucket) -> float:
    return bucket.server_errors / bucket.requests if bucket.requests else 0.0


def _deployment_hosts(
    row: Mapping[str, Any], windows: Mapping[str, Bucket], hosts: dict[str, _Host]
) -> DeploymentHosts:
    total = sum(bucket.requests for bucket in windows.values())
    traffic = []
    for name, bucket in windows.items():
        known = hosts.get(name)
        metrics = bucket_metrics(bucket)
        traffic.append(
            HostTraffic(
                host=name,
                region=known.region if known else None,
                processes=known.alive if known else 0,
                seen_s=known.seen_s if known else None,
                requests=bucket.requests,
                share=bucket.requests / total if total else 0.0,
                p50_ms=metrics["p50_ms"],
                p95_ms=metrics["p95_ms"],
                p99_ms=metrics["p99_ms"],
                error_rate=metrics["error_rate"],
                server_error_rate=_server_error_rate(bucket),
                healthy=_healthy(known, bucket),
            )
        )
    traffic.sort(key=lambda h: (-h.requests, h.host))
    return DeploymentHosts(row["id"], row["name"], traffic)


def _regions(hosts: dict[str, _Host], traffic: dict[str, list[Bucket]]) -> list[FleetRegion]:
    by_region: dict[str, list[str]] = {}
    for name, host in hosts.items():
        if host.region is not None:
            by_region.setdefault(host.region, []).append(name)
    regions = []
    for region, names in sorted(by_region.items()):
        buckets = {name: merged(traffic.get(name, [])) for name in names}
        overall = merged(buckets.values())
        where = next((hosts[n] for n in names if hosts[n].latitude is not None), hosts[names[0]])
        regions.append(
            FleetRegion(
                region=region,
                latitude=where.latitude,
                longitude=where.longitude,
                hosts=len(names),
                requests=overall.requests,
                p95_ms=bucket_metrics(overall)["p95_ms"],
                # Hosts gone from the range (a rolled-out pod's) do not turn a region red; one with none left does.
                healthy=any(hosts[n].alive for n in names)
                and all(_healthy(hosts[n], buckets[n]) for n in names if hosts[n].alive),
            )
        )
    return regions


def fleet_view(
    process_rows: Iterable[Mapping[str, Any]],
    deployments: Iterable[tuple[Mapping[str, Any], Mapping[str, Bucket]]],
    now_s: int,
    start_s: int,
) -> Fleet:
    """The fleet over [start_s, now]: `process_rows` as the store lists them, and each deployment's row with its
    traffic in the range per host."""
    processes = fleet_processes(process_rows, now_s, start_s)
    hosts = _hosts(processes)
    per_host: dict[str, list[Bucket]] = {}
    listed = []
    for row, windows in deployments:
        listed.append(_deployment_hosts(row, windows, hosts))
        for name, bucket in windows.items():
            per_host.setdefault(name, []).append(bucket)
    return Fleet(processes, sorted(listed, key=lambda d: d.id), _regions(hosts, per_host))
