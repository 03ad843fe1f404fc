#!/usr/bin/env python3
"""An OTLP trace receiver built on the official `opentelemetry-proto` package (the
OpenTelemetry protocol's generated Python code) and `grpcio`: what a collector sees of the
proxy's spans.

    target/peers/venv/bin/python otlp_receiver.py --out FILE [--protocol grpc|http]
        [--port 0] [--delay SECONDS] [--discard]

Listens on 127.0.0.1 only and prints `LISTENING <port>` once it accepts. For every export
request it appends one JSON line per span to FILE (flushed before it answers), then answers
with an empty ExportTraceServiceResponse:

  {"trace_id": "<32 hex>", "span_id": "<16 hex>", "parent_span_id": "<16 hex or empty>",
   "name": ..., "kind": "SPAN_KIND_SERVER", "start_time_unix_nano": N, "end_time_unix_nano": N,
   "status": {"code": "STATUS_CODE_UNSET", "message": ""}, "attributes": {...},
   "resource": {"service.name": ...}, "scope": "metaproxy", "trace_state": "...", "flags": N}

--protocol grpc serves TraceService/Export (OTLP/gRPC); http serves POST /v1/traces with
protobuf bodies (OTLP/HTTP). --delay makes every answer wait (a slow collector). --discard
does not decode: it appends {"bytes": N} per request (a collector that costs next to nothing,
for benchmarks). Runs until killed.
"""

import argparse
import json
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

HOST = "127.0.0.1"
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def span_lines(request):
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield {
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": trace_pb2.Span.SpanKind.Name(s.kind),
                    "start_time_unix_nano": s.start_time_unix_nano,
                    "end_time_unix_nano": s.end_time_unix_nano,
                    "status": {"code": trace_pb2.Status.StatusCode.Name(s.status.code), "message": s.status.message},
                    "attributes": attributes(s.attributes),
                    "resource": resource,
                    "scope": ss.scope.name,
                    "trace_state": s.trace_state,
                    "flags": s.flags,
                }


class Sink:
    def __init__(self, path, delay, discard):
        self.out = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.delay = delay
        self.discard = discard

    def take(self, body):
        """Records one export request's body (bytes); returns the response body."""
        if self.delay:
            time.sleep(self.delay)
        if self.discard:
            lines = [{"bytes": len(body)}]
        else:
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            lines = list(span_lines(request))
        with self.lock:
            for line in lines:
                self.out.write(json.dumps(line, sort_keys=True) + "\n")
            self.out.flush()
        return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()


def serve_grpc(sink, port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    # Raw bytes in and out (no deserializer): the sink decodes with the generated classes, or not
    # at all with --discard. The method is the one trace_service_pb2_grpc registers.
    handler = grpc.unary_unary_rpc_method_handler(lambda body, _ctx: sink.take(body))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
    assert trace_service_pb2_grpc.TraceServiceServicer.Export  # the service this mirrors
    bound = server.add_insecure_port(f"{HOST}:{port}")
    server.start()
    return bound, server


def serve_http(sink, port):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - the http.server interface
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer = sink.take(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1], server


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="file the spans are appended to, one JSON line each")
    ap.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds every answer waits")
    ap.add_argument("--discard", action="store_true", help="do not decode; record only the request sizes")
    args = ap.parse_args()
    sink = Sink(args.out, args.delay, args.discard)
    if args.protocol == "grpc":
        port, _server = serve_grpc(sink, args.port)
    else:
        port, _server = serve_http(sink, args.port)
    print(f"LISTENING {port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
