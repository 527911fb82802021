#!/usr/bin/env python3
"""Makes a container image from a directory, with no registry and no
container engine: a docker-archive tarball of one layer, which
`ctr -n k8s.io images import` loads (use `imagePullPolicy: Never`).

usage: mkimage.py OUT.tar TAG ROOT_DIR [ENTRYPOINT ARG...]
"""
import hashlib
import io
import json
import os
import sys
import tarfile


def layer_of(root):
    """The directory as a tar layer, byte for byte the same on every run
    (sorted names, owner root, time 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(top, name)
                info = tar.gettarinfo(path, os.path.relpath(path, root))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, tag, root, entrypoint = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    layer = layer_of(root)
    layer_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": entrypoint or None,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"],
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + layer_id]},
    }, sort_keys=True).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{
        "Config": config_id + ".json",
        "RepoTags": [tag],
        "Layers": [layer_id + "/layer.tar"],
    }]).encode()
    with tarfile.open(out, "w") as tar:
        for name, data in ((layer_id + "/layer.tar", layer),
                           (config_id + ".json", config),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
