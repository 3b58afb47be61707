"""What an archive holds, from its metadata alone (``napari-ozx info``).

For an RFC-9 ``jsonFirst`` archive only the end records and the metadata prefix of the central
directory are read (the claim is trusted, as RFC-9 allows; ``napari-ozx validate`` checks it),
so this costs the same on a 1,000,000-entry archive as on a 10-entry one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..zip import ZipArchive
from ..zip.remote import is_url

__all__ = ["describe", "format_description"]


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-able description of the archive at ``path``."""
    path = os.fspath(path)
    if is_url(path):  # https://, s3://, any fsspec URL: the same few ranged requests
        from ..zip.remote import open_remote_archive

        opened = open_remote_archive(path, warn=False)
    else:
        opened = ZipArchive(path, warn=False)
    with opened as archive:
        end = archive.end
        comment = archive.comment
        # A name present twice is one node: the copy a reader takes (archive.read's).
        names = set(archive.metadata_names(trust_json_first=True))
        nodes: list[dict[str, Any]] = []
        for name in sorted(names, key=lambda n: (n.count("/"), n)):
            if name.rsplit("/", 1)[-1] != "zarr.json":
                continue
            raw = archive.read(name)
            try:
                doc = json.loads(raw)
            except ValueError:
                nodes.append({"path": _node_path(name), "node_type": "invalid"})
                continue
            if isinstance(doc, dict):
                nodes.append(_node(_node_path(name), doc))
        out: dict[str, Any] = {
            "archive": archive.name,
            "size": archive.source.size,
            "entries": end.entries,
            "zip64": end.zip64,
            "comment": comment.raw.decode("utf-8", "replace"),
            "ome_version": comment.version,
            "json_first": comment.json_first,
            "central_directory_fully_read": archive.is_fully_indexed,
            "duplicates": sorted(set(archive.duplicates)),
            "nodes": nodes,
        }
    out["multiscales"] = _multiscales(nodes)
    out["labels"] = _labels(nodes)
    root = next((n for n in nodes if n["path"] == ""), None)
    out["root"] = root["node_type"] if root is not None else None
    if root is not None and out["ome_version"] is None:
        out["ome_version"] = (root.get("ome") or {}).get("version")
    return out


def _node_path(name: str) -> str:
    return name[: -len("zarr.json")].rstrip("/")


def _node(path: str, doc: dict) -> dict[str, Any]:
    node: dict[str, Any] = {"path": path, "node_type": doc.get("node_type", "?")}
    ome = (doc.get("attributes") or {}).get("ome")
    if isinstance(ome, dict):
        node["ome"] = ome
    if node["node_type"] != "array":
        return node
    codecs = doc.get("codecs") or []
    chunk_shape = _get(doc, "chunk_grid", "configuration", "chunk_shape")
    node.update(shape=doc.get("shape"), dtype=doc.get("data_type"))
    shard = next((c for c in codecs if isinstance(c, dict) and c.get("name") == "sharding_indexed"),
                 None)
    if shard is not None:
        node["shards"] = chunk_shape
        node["chunks"] = _get(shard, "configuration", "chunk_shape")
        inner = _get(shard, "configuration", "codecs") or []
        node["codecs"] = ["sharding_indexed"] + [_codec_name(c) for c in inner]
    else:
        node["chunks"] = chunk_shape
        node["shards"] = None
        node["codecs"] = [_codec_name(c) for c in codecs]
    return node


def _codec_name(c) -> str:
    if isinstance(c, dict):
        name = c.get("name", "?")
        conf = c.get("configuration") or {}
        if name == "blosc" and "cname" in conf:
            return f"blosc({conf['cname']})"
        if name == "zstd" and "level" in conf:
            return f"zstd(level={conf['level']}{', checksum' if conf.get('checksum') else ''})"
        return str(name)
    return str(c)


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _multiscales(nodes: list[dict]) -> list[dict]:
    by_path = {n["path"]: n for n in nodes}
    out = []
    for n in nodes:
        for ms in (n.get("ome") or {}).get("multiscales") or []:
            levels = []
            for ds in ms.get("datasets") or []:
                p = ds.get("path", "")
                full = f"{n['path']}/{p}" if n["path"] else p
                arr = by_path.get(full, {})
                levels.append({"path": full, "shape": arr.get("shape"), "dtype": arr.get("dtype")})
            out.append({
                "group": n["path"],
                "name": ms.get("name"),
                "axes": [a.get("name") if isinstance(a, dict) else a for a in _axes(ms)],
                "levels": levels,
            })
    return out


def _axes(ms: dict) -> list:
    """``axes``, or in OME-Zarr 0.6 those of the first coordinate system."""
    axes = ms.get("axes")
    systems = ms.get("coordinateSystems")
    if axes is None and isinstance(systems, list) and systems and isinstance(systems[0], dict):
        axes = systems[0].get("axes")
    return axes if isinstance(axes, list) else []


def _labels(nodes: list[dict]) -> list[str]:
    out = []
    for n in nodes:
        for label in (n.get("ome") or {}).get("labels") or []:
            out.append(f"{n['path']}/{label}" if n["path"] else label)
    return out


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def format_description(d: dict) -> str:
    lines = [
        f"{d['archive']}",
        f"  size        {_human(d['size'])} ({d['size']} bytes)",
        f"  entries     {d['entries']}",
        f"  ZIP64       {'yes' if d['zip64'] else 'no'}",
        f"  comment     {d['comment'] or '(none)'}",
        f"  OME-Zarr    {d['ome_version'] or '(unknown)'}"
        + ("   jsonFirst" if d["json_first"] else ""),
    ]
    if d.get("root") is None:
        lines.append("  root        no zarr.json at the archive root: not an OME-Zarr zip "
                     "(RFC-9 puts the root there)")
    elif d.get("root") == "array":
        lines.append("  root        a bare Zarr array, no OME metadata "
                     "(open_ozx returns the array; napari shows it as one image)")
    if d.get("duplicates"):
        shown = ", ".join(d["duplicates"][:5]) + (", ..." if len(d["duplicates"]) > 5 else "")
        lines.append(f"  duplicates  {len(d['duplicates'])} names occur more than once ({shown}); "
                     "each is shown once, as readers take it (the last copy)")
    lines.append("  hierarchy")
    for n in d["nodes"]:
        path = "/" + n["path"]
        if n["node_type"] == "array":
            shards = f" shards {tuple(n['shards'])}" if n.get("shards") else ""
            lines.append(
                f"    {path:<24} array {tuple(n['shape'] or ())} {n['dtype']} "
                f"chunks {tuple(n['chunks'] or ())}{shards} codecs {', '.join(n['codecs'])}"
            )
        else:
            lines.append(f"    {path:<24} {n['node_type']}")
    for ms in d["multiscales"]:
        title = f" {ms['name']!r}" if ms.get("name") else ""
        lines.append(f"  multiscales{title} at /{ms['group']} axes {','.join(map(str, ms['axes']))}"
                     f": {len(ms['levels'])} levels")
        for lv in ms["levels"]:
            lines.append(f"    /{lv['path']:<22} {tuple(lv['shape'] or ())} {lv['dtype']}")
    if d["labels"]:
        lines.append("  labels      " + ", ".join(d["labels"]))
    return "\n".join(lines)
