"""Run a Python target with an audit hook that records and blocks every non-loopback network attempt.

Usage: python tests/netguard.py VIOLATIONS_FILE (-m MODULE | -c CODE) [ARGS...]

Each attempt (DNS lookup or connect to anything but loopback) is appended to
VIOLATIONS_FILE as one line and refused with OSError, so nothing leaves the
machine and the test can assert the file stayed empty.
"""

import ipaddress
import runpy
import socket
import sys

LOOPBACK_NAMES = {None, "", "localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def install(violations_path: str) -> None:
    def hook(event: str, args: tuple) -> None:
        host = None
        if event == "socket.connect":
            sock, address = args
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return  # unix sockets and friends
            host = address[0]
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
            host = args[0]
        elif event == "socket.sendto":
            sock, address = args
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return
            host = address[0]
        else:
            return
        if _is_loopback(host):
            return
        with open(violations_path, "a") as out:
            out.write(f"{event} {host!r}\n")
        raise OSError(f"netguard: blocked {event} to {host!r}")

    sys.addaudithook(hook)


def main() -> None:
    violations_path, mode, target, *rest = sys.argv[1:]
    install(violations_path)
    if mode == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif mode == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(target, "<netguard>", "exec"), {"__name__": "__main__"})
    else:
        raise SystemExit("usage: netguard.py VIOLATIONS (-m MODULE | -c CODE) [ARGS...]")


if __name__ == "__main__":
    main()
