#!/usr/bin/python3
"""A FAKE kubectl for tests only: lab.sh registry DIR PORT --ec copies it to DIR/ec/bin/kubectl.

It answers `kubectl get secret` from the Secret fixtures in ../secrets/*.json (relative to this
file, i.e. DIR/ec/secrets), so the README's commands that read Embedded Cluster's registry
credentials can run in a test with DIR/ec/bin first on PATH and only the address substituted:

    kubectl -n kotsadm get secret registry-creds -o jsonpath='{.data.\\.dockerconfigjson}' | base64 -d
    kubectl -n registry get secret registry-tls -o jsonpath='{.data.tls\\.crt}' | base64 -d

Understood: -n/--namespace NS (default "default"), get secret[s] NAME or get secret/NAME,
-o/--output json | jsonpath=TEMPLATE where TEMPLATE is one dotted path in braces with `\\.`
escaping a dot inside a key (what those commands use). Anything else exits 2 and says so.
Like kubectl, jsonpath output has no trailing newline and a missing secret is NotFound (exit 1).
Standard library only.
"""

import json
import os
import re
import sys

SECRETS_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "secrets")


def unsupported(why):
    print("kubectl (velero-airgap lab fake): unsupported: %s" % why, file=sys.stderr)
    sys.exit(2)


def parse(argv):
    namespace, output, words = "default", None, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-n", "--namespace", "-o", "--output"):
            if i + 1 >= len(argv):
                unsupported("%s without a value" % arg)
            value = argv[i + 1]
            i += 2
        elif arg.startswith("--namespace=") or arg.startswith("--output="):
            arg, value = arg.split("=", 1)
            i += 1
        elif arg.startswith("-n") and len(arg) > 2:
            arg, value = "-n", arg[2:]
            i += 1
        elif arg.startswith("-o") and len(arg) > 2:
            arg, value = "-o", arg[2:]
            i += 1
        elif arg.startswith("-"):
            unsupported("flag %s" % arg)
        else:
            words.append(arg)
            i += 1
            continue
        if arg in ("-n", "--namespace"):
            namespace = value
        else:
            output = value
    return namespace, output, words


def jsonpath(obj, template):
    m = re.fullmatch(r"\{\.(.+)\}", template)
    if not m:
        unsupported("jsonpath template %r" % template)
    # Split on dots that are not escaped, then drop the escapes.
    for key in re.split(r"(?<!\\)\.", m.group(1)):
        key = key.replace("\\.", ".")
        if not isinstance(obj, dict) or key not in obj:
            # kubectl prints nothing for a missing field under -o jsonpath.
            return ""
        obj = obj[key]
    return obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))


def main():
    namespace, output, words = parse(sys.argv[1:])
    if words[:1] != ["get"]:
        unsupported("only `get secret` is implemented")
    rest = words[1:]
    if len(rest) == 1 and "/" in rest[0]:
        rest = rest[0].split("/", 1)
    if len(rest) != 2 or rest[0] not in ("secret", "secrets"):
        unsupported("only `get secret NAME` is implemented")
    name = rest[1]
    found = None
    for entry in sorted(os.listdir(SECRETS_DIR)):
        if entry.endswith(".json"):
            with open(os.path.join(SECRETS_DIR, entry), encoding="utf-8") as f:
                obj = json.load(f)
            meta = obj.get("metadata", {})
            if meta.get("name") == name and meta.get("namespace") == namespace:
                found = obj
    if found is None:
        print('Error from server (NotFound): secrets "%s" not found' % name, file=sys.stderr)
        sys.exit(1)
    if output == "json":
        sys.stdout.write(json.dumps(found, indent=4, sort_keys=True) + "\n")
    elif output and output.startswith("jsonpath="):
        sys.stdout.write(jsonpath(found, output[len("jsonpath="):]))
    else:
        unsupported("output %r (use -o json or -o jsonpath=...)" % output)


if __name__ == "__main__":
    main()
