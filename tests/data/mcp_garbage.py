"""Not an MCP server: it writes lines that are not JSON-RPC to stdout, then waits."""

import sys
import time

for _ in range(3):
    print("this is not JSON-RPC {", flush=True)
    sys.stdin.readline()
time.sleep(60)
