"""Parses a Prometheus text exposition (format 0.0.4) read on stdin with the reference Python
client's parser (prometheus_client.parser) and prints it as one JSON line:
[{"name", "type", "samples": [[name, labels, value], ...]}, ...]. A text the parser refuses
makes it exit non-zero with the parser's error."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = [
    {
        "name": f.name,
        "type": f.type,
        "samples": [[s.name, s.labels, s.value] for s in f.samples],
    }
    for f in text_string_to_metric_families(sys.stdin.read())
]
print(json.dumps(families))
