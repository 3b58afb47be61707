"""OME-Zarr 0.6 (RFC-5) ``scene`` groups: images placed in one shared coordinate system.

The scene's ``coordinateTransformations`` map coordinate systems of its images (``input``
with a ``path``) or of the scene itself to others.  As napari-ome-zarr does, the graph is
walked from the output system that is no transformation's input (the one reached from most
images when there are several) back to each image's datasets, and each image is opened with
the chain of transformations that leads it there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from .errors import OmeMetadataError
from .image import image_layers
from .layer import LayerData, attrs_of, child, metadata_entry, warn

MAX_DEPTH = 32  # transformations chained between an image and the scene


def _key(io: Any, path: str | None = None) -> str | None:
    if not isinstance(io, Mapping) or not isinstance(io.get("name"), str):
        return None
    base = io.get("path", path)
    return f"{base}/{io['name']}" if base else io["name"]


def _add_image(root, path: str, graph: dict) -> None:
    group = child(root, path)
    if group is None or hasattr(group, "shape"):
        warn(f"scene: image {path!r} is missing")
        return
    for ms in attrs_of(group).get("multiscales") or []:
        if not isinstance(ms, Mapping):
            continue
        for t in ms.get("coordinateTransformations") or []:
            out, inp = _key((t or {}).get("output"), path), _key((t or {}).get("input"), path)
            if out and inp:
                graph[out].append((t, inp, None))
        datasets = ms.get("datasets") or []
        if datasets and isinstance(datasets[0], Mapping):
            for t in datasets[0].get("coordinateTransformations") or []:
                out = _key((t or {}).get("output"), path)
                if out:
                    graph[out].append((t, None, path))  # a leaf: the image itself
                    break


def _chains(graph: dict, node: str, depth: int = 0):
    """(image path, transformations from the image's system to ``node``, in order)."""
    if depth > MAX_DEPTH:
        warn(f"scene: transformations chained more than {MAX_DEPTH} deep at {node!r}; "
             "stopped there")
        return
    for t, inp, image in graph.get(node, ()):
        if image is not None:
            yield image, []
        elif inp is not None:
            for path, chain in _chains(graph, inp, depth + 1):
                yield path, chain + [t]


def scene_layers(root, *, name: str, token: str = "") -> list[LayerData]:
    oa = attrs_of(root)
    scene = oa.get("scene")
    entry = metadata_entry(root)
    if not isinstance(scene, Mapping):
        raise OmeMetadataError("'scene' is not an object", entry=entry)
    graph: dict = defaultdict(list)
    visited: set[str] = set()
    for t in scene.get("coordinateTransformations") or []:
        if not isinstance(t, Mapping):
            continue
        out, inp = _key(t.get("output")), _key(t.get("input"))
        if out is None or inp is None:
            warn(f"{entry}: scene transformation without input or output ignored")
            continue
        graph[out].append((t, inp, None))
        for io in ("input", "output"):
            path = t[io].get("path")
            if isinstance(path, str) and path not in visited:
                visited.add(path)
                _add_image(root, path, graph)
    inputs = {inp for items in graph.values() for _, inp, _ in items if inp is not None}
    outputs = [k for k in graph if k not in inputs]
    if not outputs:
        raise OmeMetadataError("scene has no coordinate system that its images lead to",
                               entry=entry)
    chosen = max(outputs, key=lambda k: sum(1 for _ in _chains(graph, k)))
    layers: list[LayerData] = []
    for path, chain in _chains(graph, chosen):
        group = child(root, path)
        try:
            layers.extend(image_layers(group, name=path.rstrip("/").rsplit("/", 1)[-1],
                                       token=token, parent=[[t] for t in chain]))
        except OmeMetadataError as e:
            warn(f"scene image {path!r} skipped: {e}")
    if not layers:
        raise OmeMetadataError("scene holds no readable image", entry=entry)
    return layers
