"""Maelstrom programs that misbehave, for the adapter's tests: ``bad.py MODE``.

- ``silent``: reads its input and never answers ``init``;
- ``malformed``: answers ``init`` with a line that is not JSON;
- ``garbage``: prints a non-JSON line, then serves echo correctly;
- ``crash``: answers ``init``, then exits with code 3 on the first request.
"""

import json
import sys

mode = sys.argv[1]
for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    reply = {"src": msg["dest"], "dest": msg["src"],
             "body": {"in_reply_to": body.get("msg_id"), "msg_id": 1}}
    if body["type"] == "init":
        if mode == "silent":
            continue
        if mode == "malformed":
            print('{"src": "n0", "dest": "c0", "body": {"type": "init_ok"', flush=True)
            continue
        if mode == "garbage":
            print("hello, I am a node", flush=True)
        reply["body"]["type"] = "init_ok"
    elif mode == "crash":
        sys.exit(3)
    else:
        reply["body"].update(type="echo_ok", echo=body.get("echo"))
    print(json.dumps(reply), flush=True)
