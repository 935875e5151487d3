"""The cluster configs are valid for the Ray they target, and agree with each other."""

import json
from pathlib import Path

import jsonschema
import ray
import ray.autoscaler
import yaml
from conftest import ROOT

from lanas_pipeline.config import load_config
from lanas_pipeline.submit import entrypoint

CLUSTER = ROOT / "cluster"


def _images(doc):
    out = []

    def walk(node):
        if isinstance(node, dict):
            if "image" in node and isinstance(node["image"], str):
                out.append(node["image"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return out


def test_cluster_launcher_yaml_matches_rays_schema():
    cfg = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert any(t["resources"].get("latency_node") for t in types.values())
    # token auth on every node: each `ray start` (head and workers) in token mode, and the
    # token file copied to Ray's default path on every node (file_mounts reach all of them)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in cfg[key] if "ray start" in c]
        assert starts and all(c.startswith("RAY_AUTH_MODE=token ") for c in starts), key
    assert cfg["file_mounts"].get("/home/ray/.ray/auth_token") == "~/.ray/auth_token"
    assert not any("--generate" in c for c in cfg["head_start_ray_commands"])  # one token, not one per head start


def test_kuberay_manifests_parse_and_agree():
    cluster = yaml.safe_load((CLUSTER / "kuberay-raycluster.yaml").read_text())
    job = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert cluster["kind"] == "RayCluster" and job["kind"] == "RayJob"
    assert cluster["apiVersion"] == job["apiVersion"] == "ray.io/v1"
    minor = ".".join(ray.__version__.split(".")[:2])
    assert cluster["spec"]["rayVersion"] == job["spec"]["rayClusterSpec"]["rayVersion"]
    assert cluster["spec"]["rayVersion"].startswith(minor + ".")  # the Ray line pinned in pyproject (2.60.*)
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):  # every node type gets the mode and the same secret
        groups = [spec["headGroupSpec"]] + spec["workerGroupSpecs"]
        for g in groups:
            for c in g["template"]["spec"]["containers"]:
                env = {e["name"]: e for e in c.get("env", [])}
                assert env["RAY_AUTH_MODE"]["value"] == "token", g.get("groupName", "head")
                assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "ray-auth-token", "key": "token"}
    images = set(_images(cluster)) | set(_images(job))
    assert len(images) == 1  # one image everywhere
    assert job["spec"]["entrypoint"] == entrypoint("configs/cifar10.yaml", "/mnt/shared/runs/cifar10")
    groups = {g["groupName"] for g in cluster["spec"]["workerGroupSpecs"]} | {
        g["groupName"] for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    }
    assert groups == {"gpu-workers", "latency-workers"}
    # the custom resource the cifar10 profile asks for exists on the dedicated group
    custom = load_config(ROOT / "configs" / "cifar10.yaml").measure.resources.custom
    assert custom == {"latency_node": 1.0}
    for g in cluster["spec"]["workerGroupSpecs"]:
        if g["groupName"] == "latency-workers":
            assert json.loads(json.loads(g["rayStartParams"]["resources"])) == custom
