"""Runs an ASGI app on real uvicorn on 127.0.0.1 for tests that need a socket."""

from sandbox.serving import serve

__all__ = ["serve"]
