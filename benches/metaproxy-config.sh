# Sourced by compare.sh and profile.sh: the metaproxy configuration both measure.
#   metaproxy_yaml PROTOCOL LISTEN_PORT ECHO_PORT EXTRA_TOP_LEVEL_LINES [EXTRA_LISTENER_LINES]
# (listener lines are indented by 4 spaces, e.g. "    tracing: { ... }").
# One worker, a two-route batch-job table (both routes to the echo upstream), two upstream
# connections per endpoint.
metaproxy_yaml() {
  cat <<CFG
workers: 1
$4
listeners:
  - name: in
    address: 127.0.0.1:$2
    protocol: $1
${5:-}
    routes:
      - name: batchjob
        match: [{ key: batchjob, exact: "true" }]
        route: { cluster: echo }
      - name: default
        route: { cluster: echo }
clusters:
  - name: echo
    connections_per_endpoint: 2
    endpoints: [{ address: 127.0.0.1:$3 }]
CFG
}
