"""How long a service keeps an idle HTTP/1.1 connection open: longer than its clients do.

A client that sends on a pooled connection in the moment the server closes it for idleness gets
no answer at all (httpx: `RemoteProtocolError`, "Server disconnected without sending a
response"), and a request that is not idempotent, such as redeeming a login code at the token
service, must not simply be sent again (RFC 9110 §9.2.2). The race exists when both sides give
up on an idle connection after the same time: uvicorn's default is 5 s, httpx's pool keeps an
idle connection 5 s too (`keepalive_expiry`), and the hub's pool (`hub/http1.py`) 4 s. The
services therefore keep an idle connection `SERVER_KEEP_ALIVE_S`, so that it is always the
client that closes it first (RFC 9112 §9.6: either side may close an idle connection; only the
client knows when it will send again).
"""

from __future__ import annotations

__all__ = ["SERVER_KEEP_ALIVE_S"]

# Above every client's idle time on the network (httpx 5 s, hub/http1.py 4 s), with room for a
# loaded machine's scheduling; an idle connection costs the server a socket and a few KiB.
SERVER_KEEP_ALIVE_S = 30
