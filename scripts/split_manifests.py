#!/usr/bin/env python3
"""Splits rendered Kubernetes manifests into one file per document, grouped by the validator
that checks it, for scripts/check-manifests.sh:

    <out>/builtin/<n>-<kind>-<name>.yaml      Kubernetes built-in kinds: kubernetes-validate
    <out>/schema/<schema path>/<n>-....yaml   kinds with a JSON schema under schemas/: check-jsonschema
    <out>/unchecked.txt                       kinds with no schema kept here (listed, not validated)

Fails on a document with no apiVersion/kind/metadata.name, and on a custom kind that is neither
covered by a schema nor in the list of third-party kinds this repository applies unvalidated.

usage: split_manifests.py <schemas dir> <out dir> <manifest.yaml>...
"""

import os
import re
import sys

import yaml

# API groups served by Kubernetes itself (validated by kubernetes-validate).
BUILTIN_GROUPS = {
    "", "apps", "batch", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "autoscaling", "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io",
}
# Third-party kinds applied by the deploy scripts for which no schema is kept: their operators
# validate them on apply (Strimzi, CloudNativePG).
UNCHECKED = {
    ("kafka.strimzi.io", "Kafka"),
    ("kafka.strimzi.io", "KafkaNodePool"),
    ("postgresql.cnpg.io", "Cluster"),
}


def slug(text):
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-")


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    schemas, out, files = argv[1], argv[2], argv[3:]
    counts = {"builtin": 0, "schema": 0, "unchecked": 0}
    unchecked = []
    n = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        for doc in docs:
            n += 1
            api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            name = (doc.get("metadata") or {}).get("name", "")
            if not api or not kind or not name:
                sys.exit(f"{path}: document {n} lacks apiVersion, kind or metadata.name")
            group, _, version = api.rpartition("/")
            base = f"{n:03d}-{slug(kind)}-{slug(name)}.yaml"
            if group in BUILTIN_GROUPS:
                target = os.path.join(out, "builtin", base)
                counts["builtin"] += 1
            else:
                schema = os.path.join(group, f"{kind.lower()}_{version}.json")
                if os.path.exists(os.path.join(schemas, schema)):
                    target = os.path.join(out, "schema", schema, base)
                    counts["schema"] += 1
                elif (group, kind) in UNCHECKED:
                    unchecked.append(f"{path}: {kind} {name} ({api})")
                    counts["unchecked"] += 1
                    continue
                else:
                    sys.exit(
                        f"{path}: no JSON schema for {kind} ({api}) under {schemas}/{schema}; "
                        "add one (derived from the CRD) or list the kind in scripts/split_manifests.py"
                    )
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as f:
                yaml.safe_dump(doc, f, sort_keys=False)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "unchecked.txt"), "a", encoding="utf-8") as f:
        for line in unchecked:
            f.write(line + "\n")
    print(f"{counts['builtin']} built-in, {counts['schema']} with a kept schema, {counts['unchecked']} unchecked")


if __name__ == "__main__":
    main(sys.argv)
