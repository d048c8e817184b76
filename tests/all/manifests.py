"""Checks rendered Kubernetes manifests offline and hands them back as JSON.

Reads `kubectl kustomize` output on stdin. Every object of a built-in kind
is validated, strictly (no unknown fields), against the Kubernetes API's
own schemas by the `kubernetes-validate` package; every KEDA ScaledObject
against the openAPIV3Schema of KEDA's CRD (tests/data). Prints the objects
as one JSON array; exits 1 naming each object that does not validate.
"""

import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
}
DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def crd_schema(file, api_version):
    for doc in yaml.safe_load_all((DATA / file).read_text()):
        if doc and doc.get("kind") == "CustomResourceDefinition":
            group = doc["spec"]["group"]
            for v in doc["spec"]["versions"]:
                if f"{group}/{v['name']}" == api_version:
                    return v["schema"]["openAPIV3Schema"]
    raise SystemExit(f"{file} has no schema for {api_version}")


def main():
    objects = [o for o in yaml.safe_load_all(sys.stdin) if o]
    failed = []
    for o in objects:
        name = f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"
        key = (o.get("apiVersion"), o.get("kind"))
        try:
            if key in CRDS:
                jsonschema.validate(o, crd_schema(CRDS[key], key[0]))
            else:
                kubernetes_validate.validate(
                    o, kubernetes_validate.latest_version(), strict=True
                )
        except Exception as e:  # every failure is reported, then exit 1
            failed.append(f"{name}: {getattr(e, 'message', e)}")
    if failed:
        print("\n".join(failed), file=sys.stderr)
        sys.exit(1)
    json.dump(objects, sys.stdout)


if __name__ == "__main__":
    main()
