#!/usr/bin/env python3
"""Make synthetic container images in an OCI image layout (Python standard library only).

usage: mkimages.py [--seed SEED] [--gzip-level 0-9] LAYOUT SPEC [SPEC ...]

Each SPEC is NAME=[KIND:][index:][PLATFORMS:]LAYERS[;OPTION]...
  NAME       stored as org.opencontainers.image.ref.name in LAYOUT/index.json, e.g.
             proxy.replicated.com/library/velero:v1.18.2 (refer to it as oci:LAYOUT:NAME).
             BASE below is its repository's last path component without tag or digest.
  KIND       plugin | plain. Default: plugin when BASE starts with "velero-plugin" (the AWS
             plugin velero/velero-plugin-for-aws, test plugins named so), else plain.
  PLATFORMS  comma list of amd64 | arm64 | OS/ARCH | OS/ARCH/VARIANT (bare ARCH means linux).
             Default linux/amd64. Two or more platforms make an image index; the prefix
             "index:" makes an index even for one platform.
  LAYERS     comma list of layer sizes (uncompressed file size): 512 is KiB, 4M MiB, 1G GiB.
             SIZE@KEY gives every layer with the same KEY and SIZE the same content (shared
             blobs); otherwise each layer's content is its own. May be empty (no layers).
  OPTION     KEY=VALUE, each after a ';' (quote the SPEC in a shell). A VALUE runs to the
             next ';' (so paths cannot hold ';'), except JSON, which may hold any character.
    entrypoint=JSON   config Entrypoint: a JSON list of strings, or null for none. Like a
                      Dockerfile ENTRYPOINT it drops a plain image's default Cmd.
    cmd=JSON          config Cmd: a JSON list of strings, or null for none.
    user=U            config User, e.g. 0:0 or 1000; empty for none.
    name=NAME         (plugin) the plugin's file name, /plugins/NAME (default BASE).
    binary=PATH       (plugin) /plugins/NAME is the file PATH instead of a tiny ELF (the same
                      file for every platform: give a foreign one to test an arch check).
    copier=PATH       (plugin) /usr/bin/cp-plugin is the file PATH instead of a tiny ELF;
                      copier=none leaves /usr/bin/cp-plugin out.
    extra=SRC:DEST    add the host file SRC at the absolute path DEST, mode 0755 when SRC is
                      executable, else 0644 (repeatable; DEST cannot hold ':'). An extra at a
                      path that the plugin layer has replaces that file.
    whiteout=PATH     one more, last, layer that deletes PATH with an OCI whiteout file
                      DIR/.wh.NAME (repeatable: all go into that one layer).

A plugin image looks like the Velero AWS plugin image to a checker: after the random layers it
has one more small layer holding /plugins/NAME and /usr/bin/cp-plugin (mode 0755; unless given
as files, tiny static ELF executables for the image's architecture that only exit(0)), and its
config has Entrypoint ["cp-plugin", "/plugins/NAME", "/target/NAME"], Env ["PATH=/usr/bin:/bin"]
and User "65532:65532". A plain image has Cmd ["/bin/true"]; with extra= it gets one small
layer of those files after the random ones. Tiny ELF architectures: amd64, arm64, arm, 386,
ppc64le, s390x, riscv64.

Examples:
  mkimages.py out 'example.com/app:1.0=1024,4096'
  mkimages.py --seed 7 out 'example.com/multi:2=amd64,arm64:512@base,128'
  mkimages.py out 'docker.io/velero/velero-plugin-for-aws:v1.14.0=amd64,arm64:256'
  mkimages.py out 'lab.test/p:1=plugin:64;name=velero-plugin-x;binary=build/x;user=0:0'
  mkimages.py out 'lab.test/sleep:1=plain:;extra=build/sleep:/bin/sleep;entrypoint=["/bin/sleep","infinity"]'
  mkimages.py out 'lab.test/velero-plugin-gone:1=;whiteout=/plugins/velero-plugin-gone'

Layer content is pseudo-random (incompressible) bytes in a one-file tar, compressed with gzip
(level 1 by default; level 0 writes stored blocks, ~15x faster, for very large layers) and
streamed to disk in 1 MiB chunks while hashing, so a layer never sits in memory whole. With
--seed the output is byte-for-byte reproducible: tar entries are sorted, owned by 0:0, and
dated SOURCE_DATE_EPOCH (0 when unset), which also dates the configs. The layout may already
exist: images are added, and an entry with the same NAME is replaced.

Prints one line per image: NAME<TAB>DIGEST<TAB>MEDIA_TYPE.
"""

import argparse
import dataclasses
import datetime
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import struct
import sys
import tarfile
import zlib

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20
# Fixed timestamps keep the layers and config blobs (and so every digest) reproducible;
# SOURCE_DATE_EPOCH is the convention for choosing one (reproducible-builds.org).
MTIME = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
EPOCH = datetime.datetime.fromtimestamp(MTIME, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
UNITS = {"": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
PLUGIN_PREFIX = "velero-plugin"
COPIER = "/usr/bin/cp-plugin"
PLUGIN_USER = "65532:65532"
PLUGIN_ENV = ["PATH=/usr/bin:/bin"]
UNSET = object()


class SpecError(ValueError):
    """A SPEC argument that does not follow the syntax in the usage text."""


# A program that calls exit(0), per architecture: (ELF class 64?, big-endian?, e_machine,
# e_flags, code). Hand-assembled so the script needs no cross toolchain; each was run under
# qemu-user when written.
EXIT0 = {
    # xor edi,edi; mov eax,60 (exit); syscall
    "amd64": (True, False, 62, 0, bytes.fromhex("31ff" "b83c000000" "0f05")),
    # mov x0,#0; mov x8,#93 (exit); svc #0
    "arm64": (True, False, 183, 0, bytes.fromhex("000080d2" "a80b80d2" "010000d4")),
    # mov r0,#0; mov r7,#1 (exit); svc #0 -- EABI 5, which kernels without OABI support need
    "arm": (False, False, 40, 0x05000000, bytes.fromhex("0000a0e3" "0170a0e3" "000000ef")),
    # xor ebx,ebx; mov eax,1 (exit); int 0x80
    "386": (False, False, 3, 0, bytes.fromhex("31db" "b801000000" "cd80")),
    # li r0,1 (exit); li r3,0; sc -- ELFv2 ABI (e_flags 2): the entry is code, not a descriptor
    "ppc64le": (True, False, 21, 2, bytes.fromhex("01000038" "00006038" "02000044")),
    # lghi %r2,0; svc 1 (exit)
    "s390x": (True, True, 22, 0, bytes.fromhex("a7290000" "0a01")),
    # li a0,0; li a7,93 (exit); ecall
    "riscv64": (True, False, 243, 0, bytes.fromhex("13050000" "9308d005" "73000000")),
}


def tiny_elf(arch, note):
    """A minimal static ELF executable for ARCH that exits 0: an ELF header, one PT_LOAD
    program header and the code, no PT_INTERP (so a checker sees a static binary) and no
    sections. NOTE is kept after the code so that two such files differ by purpose."""
    is64, big, machine, flags, code = EXIT0[arch]
    order = ">" if big else "<"
    base = 0x400000  # aligned for 4 KiB and 64 KiB pages, above vm.mmap_min_addr
    ehsize, phsize = (64, 56) if is64 else (52, 32)
    body = code + b"\0" * (-len(code) % 8) + note.encode() + b"\0"
    size = ehsize + phsize + len(body)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, 1, 0]) + b"\0" * 8
    # e_type EXEC, e_version 1, e_entry, e_phoff, e_shoff 0, e_flags, then the sizes and counts.
    fields = (2, machine, 1, base + ehsize + phsize, ehsize, 0, flags, ehsize, phsize, 1, 64 if is64 else 40, 0, 0)
    ehdr = ident + struct.pack(order + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH"), *fields)
    # PT_LOAD of the whole file, readable and executable (p_flags R+X = 5).
    if is64:
        phdr = struct.pack(order + "IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x10000)
    else:
        phdr = struct.pack(order + "IIIIIIII", 1, 0, base, base, size, size, 5, 0x10000)
    return ehdr + phdr + body


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


def repository_base(name):
    """The repository's last path component, without tag or digest."""
    return name.partition("@")[0].rsplit("/", 1)[-1].partition(":")[0]


def image_path(text, what):
    """An absolute path inside the image, returned without its leading '/' (as in a tar)."""
    if not text.startswith("/") or posixpath.normpath(text) != text or text == "/" or "\\" in text:
        raise SpecError(f"bad {what} path {text!r} (want a normalised absolute path)")
    return text[1:]


def host_file(text, what):
    if not os.path.isfile(text):
        raise SpecError(f"{what} {text!r} is not a file")
    return text


@dataclasses.dataclass
class Spec:
    name: str
    force_index: bool
    platforms: list
    layers: list  # [(size, key or None)]
    plugin: bool
    plugin_name: str
    entrypoint: object = UNSET
    cmd: object = UNSET
    user: object = UNSET
    binary: str = None
    copier: str = None  # a host path, "none", or None for the tiny ELF
    extras: list = dataclasses.field(default_factory=list)  # [(host path, path in image)]
    whiteouts: list = dataclasses.field(default_factory=list)  # [path in image]


def parse_json_list(text, key):
    """Decodes the JSON at the start of TEXT; returns (value, the rest after it)."""
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"bad {key} JSON {text!r}: {e}") from None
    if value is not None and not (
        isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    ):
        raise SpecError(f"{key} wants a non-empty JSON list of strings or null, got {value!r}")
    return value, text[end:]


def parse_options(spec, text):
    """Applies the ';KEY=VALUE' options in TEXT (which starts with ';' or is empty) to SPEC."""
    while text:
        if not text.startswith(";"):
            raise SpecError(f"bad option text {text!r} (want ';KEY=VALUE')")
        key, sep, text = text[1:].partition("=")
        if not sep:
            raise SpecError(f"bad option {key!r} (want KEY=VALUE)")
        if key in ("entrypoint", "cmd"):
            value, text = parse_json_list(text, key)
            setattr(spec, key, value)
            continue
        value, sep, rest = text.partition(";")
        text = sep + rest
        if key == "user":
            spec.user = value or None
        elif key == "extra":
            src, sep, dest = value.rpartition(":")
            if not sep or not src:
                raise SpecError(f"bad extra {value!r} (want SRC:DEST)")
            spec.extras.append((host_file(src, "extra"), image_path(dest, "extra")))
        elif key == "whiteout":
            spec.whiteouts.append(image_path(value, "whiteout"))
        elif key in ("name", "binary", "copier"):
            if not spec.plugin:
                raise SpecError(f"{key}= is for plugin images; {spec.name} is plain")
            if key == "name":
                if not re.fullmatch(r"[A-Za-z0-9._-]+", value) or value in (".", ".."):
                    raise SpecError(f"bad plugin name {value!r}")
                spec.plugin_name = value
            elif key == "binary":
                spec.binary = host_file(value, "binary")
            else:
                spec.copier = value if value == "none" else host_file(value, "copier")
        else:
            raise SpecError(f"unknown option {key!r}")


def parse_spec(text):
    """Returns a Spec."""
    name, sep, rest = text.partition("=")
    if not sep or not name or any(c.isspace() for c in name):
        raise SpecError(f"bad spec {text!r} (want NAME=[KIND:][index:][PLATFORMS:]LAYERS)")
    # Options start at the first ';' (JSON values come later, so a ';' inside one is no risk).
    rest, semicolon, options = rest.partition(";")
    parts = rest.split(":")
    base = repository_base(name)
    plugin = base.startswith(PLUGIN_PREFIX)
    if parts[0] in ("plugin", "plain"):
        plugin = parts[0] == "plugin"
        parts = parts[1:] or [""]
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
    spec = Spec(name, force_index, platforms, layers, plugin, base)
    parse_options(spec, semicolon + options)
    if plugin and not (spec.binary and spec.copier):
        for platform in platforms:
            if platform["architecture"] not in EXIT0:
                raise SpecError(
                    f"{name}: no tiny ELF for architecture {platform['architecture']!r} "
                    f"(have {', '.join(EXIT0)}); give binary= and copier="
                )
    return spec


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

    def put_bytes(self, data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        tmp = os.path.join(self.blobs, f".tmp-{digest}")
        with open(tmp, "wb") as f:
            f.write(data)
        self._commit(tmp, digest)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def put_json(self, obj, media_type):
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        return self.put_bytes(data, media_type)

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
            info.size, info.mtime, info.mode = size, MTIME, 0o644
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

    def put_files_layer(self, files, level):
        """A gzip'd tar of small files held in memory. FILES maps a path inside the image
        (no leading '/') to (bytes, mode); their parent directories are added (0755).

        Returns (descriptor, diff_id)."""
        entries = dict(files)
        for path in files:
            parent = posixpath.dirname(path)
            while parent:
                entries.setdefault(parent, (None, 0o755))
                parent = posixpath.dirname(parent)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            # Sorted, so a parent comes before its children and the order never depends on
            # the order of the options.
            for path in sorted(entries):
                data, mode = entries[path]
                info = tarfile.TarInfo(path)
                info.mtime, info.mode, info.uid, info.gid = MTIME, mode, 0, 0
                info.uname = info.gname = ""
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        raw = raw.getvalue()
        comp = zlib.compressobj(level, zlib.DEFLATED, 31)
        descriptor = self.put_bytes(comp.compress(raw) + comp.flush(), OCI_LAYER_GZIP)
        return descriptor, "sha256:" + hashlib.sha256(raw).hexdigest()

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


def read_file(path):
    with open(path, "rb") as f:
        data = f.read()
    mode = 0o755 if os.stat(path).st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) else 0o644
    return data, mode


def files_layer(spec, arch):
    """The files of the plugin layer (or of a plain image's extra layer): {path: (bytes, mode)}."""
    files = {}
    if spec.plugin:
        name = spec.plugin_name
        if spec.binary:
            files[f"plugins/{name}"] = (read_file(spec.binary)[0], 0o755)
        else:
            files[f"plugins/{name}"] = (tiny_elf(arch, f"mkimages test plugin {name}"), 0o755)
        if spec.copier == "none":
            pass
        elif spec.copier:
            files[COPIER[1:]] = (read_file(spec.copier)[0], 0o755)
        else:
            files[COPIER[1:]] = (tiny_elf(arch, "mkimages cp-plugin stand-in"), 0o755)
    for src, dest in spec.extras:
        files[dest] = read_file(src)
    return files


def image_config(spec):
    """The config's "config" object: the historical plain one unless the SPEC says otherwise."""
    if spec.plugin:
        name = spec.plugin_name
        config = {
            "Entrypoint": ["cp-plugin", f"/plugins/{name}", f"/target/{name}"],
            "Env": list(PLUGIN_ENV),
            "User": PLUGIN_USER,
        }
    else:
        config = {"Cmd": ["/bin/true"]}
        if spec.entrypoint is not UNSET:
            del config["Cmd"]  # as a Dockerfile ENTRYPOINT resets the inherited CMD
    for key, value in (("Entrypoint", spec.entrypoint), ("Cmd", spec.cmd), ("User", spec.user)):
        if value is UNSET:
            continue
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    config["Labels"] = {"made-by": "velero-airgap mkimages"}
    return config


def platform_image(layout, seed, spec, platform, level):
    name = spec.name
    plat = "/".join(platform[k] for k in ("os", "architecture", "variant") if k in platform)
    descriptors, diff_ids, history = [], [], []

    def add(layer, created_by):
        descriptors.append(layer[0])
        diff_ids.append(layer[1])
        history.append({"created": EPOCH, "created_by": created_by})

    for i, (size, key) in enumerate(spec.layers):
        own = f"shared|{key}|{size}" if key else f"{name}|{plat}|{i}|{size}"
        add(layout.put_layer(size, seed + b"|" + own.encode(), level), "mkimages")
    files = files_layer(spec, platform["architecture"])
    if files:
        paths = " ".join("/" + p for p in sorted(files))
        add(layout.put_files_layer(files, level), f"mkimages: files {paths}")
    if spec.whiteouts:
        whiteouts = {}
        for path in spec.whiteouts:
            parent, base = posixpath.split(path)
            whiteouts[posixpath.join(parent, ".wh." + base)] = (b"", 0o644)
        paths = " ".join("/" + p for p in sorted(spec.whiteouts))
        add(layout.put_files_layer(whiteouts, level), f"mkimages: whiteout {paths}")
    config = dict(platform)
    config.update(
        {
            "created": EPOCH,
            "config": image_config(spec),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
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
    for spec in specs:
        images = [
            platform_image(layout, seed, spec, platform, args.gzip_level)
            for platform in spec.platforms
        ]
        if len(images) == 1 and not spec.force_index:
            top = images[0]
            del top["platform"]
        else:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": images}
            top = layout.put_json(index, OCI_INDEX)
        top["annotations"] = {REF_NAME: spec.name}
        entries.append(top)
        print(f"{spec.name}\t{top['digest']}\t{top['mediaType']}")
    layout.write_index(entries)


if __name__ == "__main__":
    main(sys.argv[1:])
