"""An MCP server for the tests, on the official SDK: stdio by default, `http PORT` for
streamable HTTP on loopback. Its tools answer, fail, crash and hang on request."""

import json
import os
import sys
import time

from mcp.server.mcpserver import MCPServer

FACTS = {"libffi": "libffi calls C functions whose signature is known only at run time."}

server = MCPServer("facts")


@server.tool()
def lookup(term: str) -> str:
    """Look up the one fact known about a term."""
    return FACTS.get(term.lower(), f"no fact about {term}")


@server.tool()
def environment() -> str:
    """The names of the environment variables this server was given."""
    return json.dumps(sorted(os.environ))


@server.tool()
def fail(reason: str) -> str:
    """Raises."""
    raise ValueError(reason)


@server.tool()
def crash() -> str:
    """Exits at once, mid-call."""
    print("facts: crashing on purpose", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
def hang(seconds: float) -> str:
    """Sleeps."""
    time.sleep(seconds)
    return "woke"


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
