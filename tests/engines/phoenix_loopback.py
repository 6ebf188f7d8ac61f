"""Start `phoenix serve` with its gRPC OTLP receiver on loopback too: Phoenix binds it to every
interface ("[::]:PORT") whatever PHOENIX_HOST says, and offers no setting to change or turn it
off outside read-only mode. Run with the Phoenix virtualenv's python."""

import sys

import grpc.aio

_server = grpc.aio.server


def _loopback_server(*args, **kwargs):
    server = _server(*args, **kwargs)
    add = server.add_insecure_port
    server.add_insecure_port = lambda address: add(address.replace("[::]", "127.0.0.1"))
    return server


grpc.aio.server = _loopback_server

from phoenix.server.main import main  # noqa: E402

sys.argv = ["phoenix", "serve"]
main()
