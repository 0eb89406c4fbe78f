#!/usr/bin/env python3
"""Make synthetic container images in an OCI image layout (Python standard library only).

usage: mkimages.py [--seed SEED] [--gzip-level 0-9] LAYOUT SPEC [SPEC ...]

Each SPEC is NAME=[index:][PLATFORMS:]LAYERS
  NAME       stored as org.opencontainers.image.ref.name in LAYOUT/index.json, e.g.
             proxy.replicated.com/library/velero:v1.18.2 (refer to it as oci:LAYOUT:NAME).
  PLATFORMS  comma list of amd64 | arm64 | OS/ARCH | OS/ARCH/VARIANT (bare ARCH means linux).
             Default linux/amd64. Two or more platforms make an image index; the prefix
             "index:" makes an index even for one platform.
  LAYERS     comma list of layer sizes (uncompressed file size): 512 is KiB, 4M MiB, 1G GiB.
             SIZE@KEY gives every layer with the same KEY and SIZE the same content (shared
             blobs); otherwise each layer's content is its own. May be empty (no layers).

Examples:
  mkimages.py out 'example.com/app:1.0=1024,4096'
  mkimages.py --seed 7 out 'example.com/multi:2=amd64,arm64:512@base,128'

Layer content is pseudo-random (incompressible) bytes in a one-file tar, compressed with gzip
(level 1 by default; level 0 writes stored blocks, ~15x faster, for very large layers) and
streamed to disk in 1 MiB chunks while hashing, so a layer never sits in memory whole. With
--seed the output is byte-for-byte reproducible. The layout may already exist: images are
added, and an entry with the same NAME is replaced.

Prints one line per image: NAME<TAB>DIGEST<TAB>MEDIA_TYPE.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import tarfile
import zlib

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20
# Fixed timestamps keep the config blobs (and so every digest) reproducible.
EPOCH = "1970-01-01T00:00:00Z"
UNITS = {"": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


class SpecError(ValueError):
    """A SPEC argument that does not follow the syntax in the usage text."""


def parse_platform(text):
    parts = text.split("/")
    if len(parts) == 1:
        parts = ["linux"] + parts
    if len(parts) not in (2, 3) or not all(re.fullmatch(r"[a-z0-9]+", p) for p in parts):
        raise SpecError(f"bad platform {text!r} (want ARCH, OS/ARCH or OS/ARCH/VARIANT)")
    platform = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMG]?)", text)
    if not m:
        raise SpecError(f"bad layer size {text!r} (want e.g. 512, 4M or 1G)")
    return int(m.group(1)) * UNITS[m.group(2)]


def parse_spec(text):
    """Returns (name, force_index, platforms, layers) where layers is [(size, key or None)]."""
    name, sep, rest = text.partition("=")
    if not sep or not name or any(c.isspace() for c in name):
        raise SpecError(f"bad spec {text!r} (want NAME=[index:][PLATFORMS:]LAYERS)")
    parts = rest.split(":")
    force_index = parts[0] == "index"
    if force_index:
        parts = parts[1:]
    if len(parts) > 2:
        raise SpecError(f"bad spec {text!r}: too many ':'")
    platform_list = parts[0] if len(parts) == 2 else "amd64"
    platforms = [parse_platform(p) for p in platform_list.split(",")]
    layers = []
    for item in parts[-1].split(",") if parts and parts[-1] else []:
        size, _, key = item.partition("@")
        layers.append((parse_size(size), key or None))
    return name, force_index, platforms, layers


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def _commit(self, tmp, digest):
        final = os.path.join(self.blobs, digest)
        if os.path.exists(final):
            os.unlink(tmp)
        else:
            os.replace(tmp, final)

    def put_json(self, obj, media_type):
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        tmp = os.path.join(self.blobs, f".tmp-{digest}")
        with open(tmp, "wb") as f:
            f.write(data)
        self._commit(tmp, digest)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def put_layer(self, size, content_key, level):
        """Streams a gzip'd one-file tar of SIZE pseudo-random bytes.

        Returns (descriptor, diff_id)."""
        tmp = os.path.join(self.blobs, f".tmp-layer-{os.getpid()}")
        raw_hash, gz_hash = hashlib.sha256(), hashlib.sha256()
        # wbits 31 = gzip wrapper; zlib writes mtime 0 and no file name, so output is stable.
        comp = zlib.compressobj(level, zlib.DEFLATED, 31)
        written = 0
        with open(tmp, "wb") as out:

            def emit(raw):
                nonlocal written
                raw_hash.update(raw)
                packed = comp.compress(raw)
                gz_hash.update(packed)
                out.write(packed)
                written += len(packed)

            info = tarfile.TarInfo("data/" + hashlib.sha256(content_key).hexdigest()[:16] + ".bin")
            info.size, info.mtime, info.mode = size, 0, 0o644
            emit(info.tobuf(format=tarfile.PAX_FORMAT))
            for i in range(0, size, CHUNK):
                n = min(CHUNK, size - i)
                emit(hashlib.shake_128(content_key + b"|%d" % i).digest(n))
            emit(b"\0" * ((-size) % 512 + 1024))
            tail = comp.flush()
            gz_hash.update(tail)
            out.write(tail)
            written += len(tail)
        digest = gz_hash.hexdigest()
        self._commit(tmp, digest)
        descriptor = {"mediaType": OCI_LAYER_GZIP, "digest": "sha256:" + digest, "size": written}
        return descriptor, "sha256:" + raw_hash.hexdigest()

    def write_index(self, entries):
        path = os.path.join(self.root, "index.json")
        manifests = []
        if os.path.exists(path):
            with open(path) as f:
                manifests = json.load(f).get("manifests", [])
        names = {e["annotations"][REF_NAME] for e in entries}
        manifests = [m for m in manifests if m.get("annotations", {}).get(REF_NAME) not in names]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests + entries}
        with open(path + ".tmp", "w") as f:
            json.dump(index, f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)


def platform_image(layout, seed, name, platform, layers, level):
    plat = "/".join(platform[k] for k in ("os", "architecture", "variant") if k in platform)
    descriptors, diff_ids = [], []
    for i, (size, key) in enumerate(layers):
        own = f"shared|{key}|{size}" if key else f"{name}|{plat}|{i}|{size}"
        descriptor, diff_id = layout.put_layer(size, seed + b"|" + own.encode(), level)
        descriptors.append(descriptor)
        diff_ids.append(diff_id)
    config = dict(platform)
    config.update(
        {
            "created": EPOCH,
            "config": {"Cmd": ["/bin/true"], "Labels": {"made-by": "velero-airgap mkimages"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": EPOCH, "created_by": "mkimages"}] * len(layers),
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layout.put_json(config, OCI_CONFIG),
        "layers": descriptors,
    }
    descriptor = layout.put_json(manifest, OCI_MANIFEST)
    descriptor["platform"] = platform
    return descriptor


def main(argv):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=argparse.SUPPRESS,
    )
    parser.add_argument("--seed", help="make the output reproducible (any string)")
    parser.add_argument("--gzip-level", type=int, default=1, choices=range(10))
    parser.add_argument("layout")
    parser.add_argument("specs", nargs="+", metavar="SPEC")
    args = parser.parse_args(argv)
    try:
        specs = [parse_spec(s) for s in args.specs]
    except SpecError as e:
        parser.error(str(e))
    seed = args.seed.encode() if args.seed is not None else os.urandom(16).hex().encode()

    layout = Layout(args.layout)
    entries = []
    for name, force_index, platforms, layers in specs:
        images = [
            platform_image(layout, seed, name, platform, layers, args.gzip_level)
            for platform in platforms
        ]
        if len(images) == 1 and not force_index:
            top = images[0]
            del top["platform"]
        else:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": images}
            top = layout.put_json(index, OCI_INDEX)
        top["annotations"] = {REF_NAME: name}
        entries.append(top)
        print(f"{name}\t{top['digest']}\t{top['mediaType']}")
    layout.write_index(entries)


if __name__ == "__main__":
    main(sys.argv[1:])
