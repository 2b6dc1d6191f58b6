"""Several hosts on one machine: Linux network namespaces joined by veth pairs to a bridge in the root namespace,
which reaches them all (traffic comes from there). Needs root; everything made is removed at the end."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Hosts:
    """`Hosts(["a", "b", "c"])`: namespace per name, each with an address on 10.231.N.0/24 (`address[name]`);
    the root namespace is `gateway` (.1). `command(name, [...])` runs a command in a host's namespace."""

    def __init__(self, names: Sequence[str]) -> None:
        tag = os.getpid() % 10_000  # interface names stay under Linux's 15 characters
        self.subnet = f"10.231.{os.getpid() % 200 + 20}"
        self.bridge = f"yw{tag}br"
        self.gateway = f"{self.subnet}.1"
        self.namespaces = {name: f"yw{tag}{name}" for name in names}
        self.address = {name: f"{self.subnet}.{i}" for i, name in enumerate(names, 2)}
        self._made: list[tuple[str, ...]] = []

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[name], *argv]

    def __enter__(self) -> Hosts:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self._made.append(("link", "del", self.bridge))
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, (name, namespace) in enumerate(self.namespaces.items()):
                _ip("netns", "add", namespace)
                self._made.append(("netns", "del", namespace))  # removes its end of the veth pair, and so the pair
                outside, inside = f"{self.bridge[:-2]}{i}h", f"{self.bridge[:-2]}{i}n"
                _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
                _ip("link", "set", inside, "netns", namespace)
                _ip("link", "set", outside, "master", self.bridge, "up")
                _ip("netns", "exec", namespace, "ip", "addr", "add", f"{self.address[name]}/24", "dev", inside)
                _ip("netns", "exec", namespace, "ip", "link", "set", inside, "up")
                _ip("netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._made):
            subprocess.run(["ip", *undo], capture_output=True)
        self._made.clear()
