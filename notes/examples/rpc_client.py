#!/usr/bin/env python3
"""A minimal client of `dispatch-server rpc`: sends hello (when DISPATCH_RPC_TOKEN is set)
and one prompt, prints the streamed text, and exits after the turn is sealed.

Usage: rpc_client.py MESSAGE [--server PATH]
"""

import json
import os
import subprocess
import sys


def main() -> int:
    args = sys.argv[1:]
    server = "target/debug/dispatch-server"
    if "--server" in args:
        i = args.index("--server")
        server = args[i + 1]
        del args[i : i + 2]
    message = " ".join(args) or "Say hello"
    proc = subprocess.Popen(
        [server, "rpc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )

    def send(command: dict) -> None:
        proc.stdin.write(json.dumps(command) + "\n")
        proc.stdin.flush()

    token = os.environ.get("DISPATCH_RPC_TOKEN")
    if token:
        send({"id": "hello", "type": "hello", "token": token})
    send({"id": "p1", "type": "prompt", "message": message})

    status = 0
    for line in proc.stdout:
        msg = json.loads(line)
        kind = msg.get("type")
        if kind == "response":
            if not msg.get("success"):
                print(f"\n[{msg.get('command')}] {msg.get('error')}", file=sys.stderr)
                status = 1
                break
        elif kind == "text-delta":
            print(msg["delta"], end="", flush=True)
        elif kind == "tool-call":
            print(f"\n> {msg['toolName']}({json.dumps(msg['input'])})", flush=True)
        elif kind == "done":
            print(f"\n[done: {msg['finishReason']}]")
            if msg["finishReason"] == "error":
                status = 1
        elif kind == "turn-sealed":
            break
    proc.stdin.close()
    proc.wait(timeout=30)
    return status


if __name__ == "__main__":
    sys.exit(main())
