"""An OTLP/HTTP trace receiver for herald's tests (otlp-collector.sh): every POST body is decoded
with the official OpenTelemetry protobuf definitions (PyPI opentelemetry-proto) and recorded as
one JSON line: path, headers (lower-case names), the body in hex, and the decoded request as
protobuf's JSON mapping with the .proto field names (or the decode error). Answers 200 with an
empty ExportTraceServiceResponse, or the status given by --status."""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 (the name http.server calls)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            record = {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_hex": body.hex(),
            }
            try:
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                record["request"] = MessageToDict(request, preserving_proto_field_name=True)
            except Exception as e:  # the test reads the error from the record
                record["error"] = f"{type(e).__name__}: {e}"
            with lock, open(args.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(args.status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, fmt, *a):
            print(fmt % a, flush=True)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    open(args.ready_file, "w").close()
    server.serve_forever()


if __name__ == "__main__":
    main()
