"""The RFC-9 archive comment ``{"ome": {"version": ..., "zipFile": {...}}}``: parsed for the
reader, written for the writer, in one place so both agree on its shape.

This and the metadata basenames (:mod:`.names`) are all the ZIP layer knows of OME-Zarr.  The
writer's default version is ``attributes.ome.version`` of the root ``zarr.json``
(:func:`ome_version_of`): the one field of a Zarr document the ZIP layer reads, because
RFC-9 asks that the comment repeat it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["OmeComment", "parse_comment", "rfc9_comment", "ome_version_of"]


@dataclass(frozen=True)
class OmeComment:
    """The archive comment as RFC-9 reads it."""

    raw: bytes
    data: dict | None = None
    version: str | None = None
    json_first: bool = False
    problem: str | None = None  #: why the comment is not a usable RFC-9 comment, if it is not


def parse_comment(comment: bytes) -> OmeComment:
    if not comment:
        return OmeComment(raw=comment, problem="no archive comment")
    try:
        data = json.loads(comment.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return OmeComment(raw=comment, problem="archive comment is not UTF-8 JSON")
    if not isinstance(data, dict) or not isinstance(data.get("ome"), dict):
        return OmeComment(raw=comment, data=None, problem='archive comment has no "ome" object')
    ome = data["ome"]
    version = ome.get("version")
    version = version if isinstance(version, str) else None
    zf = ome.get("zipFile")
    cd = zf.get("centralDirectory") if isinstance(zf, dict) else None
    json_first = bool(isinstance(cd, dict) and cd.get("jsonFirst") is True)
    problem = None if version else 'archive comment has no "ome.version"'
    return OmeComment(raw=comment, data=data, version=version, json_first=json_first,
                      problem=problem)


def rfc9_comment(version: str) -> bytes:
    """The comment the writer gives an archive: the version and ``jsonFirst``."""
    return json.dumps(
        {"ome": {"version": version, "zipFile": {"centralDirectory": {"jsonFirst": True}}}},
        separators=(",", ":"),
    ).encode("utf-8")


def ome_version_of(root_metadata: bytes | None) -> str | None:
    """``attributes.ome.version`` of a root ``zarr.json``, or None."""
    if not root_metadata:
        return None
    try:
        doc = json.loads(root_metadata)
        version = doc["attributes"]["ome"]["version"]
    except (ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None
