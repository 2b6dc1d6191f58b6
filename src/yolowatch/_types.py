"""Types every layer shares: the clock, and the ASGI scope keys yolowatch's own apps set for each other."""

from __future__ import annotations

from collections.abc import Callable

# Wall-clock epoch seconds. Injected everywhere time matters, so tests move time instead of waiting for it.
Clock = Callable[[], float]

# An app that answered but wants the request logged as CRITICAL (the sidecar's unreachable upstream) sets
# this key in the ASGI scope; WatchMiddleware reads it.
CRITICAL_MARK = "yolowatch.critical"
# Set in the scope of a golden-image request by the middleware: the app under it keeps no sampled frame of it.
GOLDEN_MARK = "yolowatch.golden"
# Set by the middleware when traces are on: the request's `tracecontext.Trace` (a proxy sends it on as the
# upstream's parent; the bundled app times its stages only for a sampled one).
TRACE_MARK = "yolowatch.trace"
# Set by an app in a sampled request's scope: the stages it timed, a tuple of `tracecontext.Stage`; the
# middleware makes them child spans of the request's span.
STAGES_MARK = "yolowatch.stages"
