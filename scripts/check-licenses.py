#!/usr/bin/env python3
"""Checks every crate in the dependency graph (all features, dev-dependencies included) against
the licence allow-list in deny.toml, evaluating SPDX expressions (OR, AND, WITH, parentheses).
Exits 1 naming each crate whose licence is not allowed."""
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parent.parent
allow = set(tomllib.loads((root / "deny.toml").read_text())["licenses"]["allow"])


def allowed(expr: str) -> bool:
    tokens = re.findall(r"\(|\)|[^\s()]+", expr.replace("/", " OR "))
    pos = 0

    def primary():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            value = disjunction()
            pos += 1  # ')'
            return value
        if pos < len(tokens) and tokens[pos] == "WITH":
            exc = tokens[pos + 1]
            pos += 2
            return f"{tok} WITH {exc}" in allow or tok in allow
        return tok in allow

    def conjunction():
        nonlocal pos
        value = primary()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            value = primary() and value
        return value

    def disjunction():
        nonlocal pos
        value = conjunction()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            value = conjunction() or value
        return value

    return disjunction()


meta = json.loads(subprocess.run(
    ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
    cwd=root, check=True, capture_output=True, text=True).stdout)
in_graph = {node["id"] for node in meta["resolve"]["nodes"]}
bad = []
for pkg in meta["packages"]:
    if pkg["id"] not in in_graph:
        continue
    lic = pkg.get("license")
    if not lic or not allowed(lic):
        bad.append(f"{pkg['name']} {pkg['version']}: {lic or 'no licence declared'}")
if bad:
    print("licence check: not in deny.toml's allow-list:\n  " + "\n  ".join(bad))
    sys.exit(1)
print(f"licence check: {len(in_graph)} crates, all licences allowed")
