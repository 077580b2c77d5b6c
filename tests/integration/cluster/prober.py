"""A probe that runs inside a lab pod (its source is passed to ``python -c``): it asks from the pod's own network.

GET /?resolve=NAME   -> {"ok": true, "addresses": [...]}   (the pod's resolver: cluster DNS and search path)
GET /?url=URL        -> {"ok": true, "status": 200, "body": "..."} or {"ok": false, "error": "..."}
The test reaches the probe at the pod's IP from the host (the pod network is routed to the host's bridge).
"""

import http.server
import json
import socket
import urllib.parse
import urllib.request


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        out = {}
        try:
            if "resolve" in query:
                infos = socket.getaddrinfo(query["resolve"][0], None, socket.AF_INET)
                out = {"ok": True, "addresses": sorted({info[4][0] for info in infos})}
            elif "url" in query:
                timeout = float(query.get("timeout", ["2"])[0])
                with urllib.request.urlopen(query["url"][0], timeout=timeout) as resp:
                    out = {"ok": True, "status": resp.status, "body": resp.read(300).decode()}
        except Exception as exc:  # pylint: disable=broad-except
            out = {"ok": False, "error": repr(exc)}
        body = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
