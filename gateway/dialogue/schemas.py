"""JSON schemas from packs and the dialogue, checked without the network.

jsonschema resolves a ``$ref`` it does not hold by fetching it (urllib, with a deprecation warning): a pack
tool's ``"parameters": {"$ref": "http://…"}`` made the appliance connect out on the first validation. Here a
schema may only refer inside itself (``#/…``), checked when a pack loads, and validators get a registry that
resolves nothing else.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry

NOTHING_REMOTE = Registry()   # no resources and no retrieve: an outside reference is an error, never a fetch
_REF_KEYS = ("$ref", "$dynamicRef")


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, registry=NOTHING_REMOTE)


def outside_refs(schema: Any) -> list[str]:
    """The references in ``schema`` that point outside it (anything but ``#`` fragments)."""
    found: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in _REF_KEYS and isinstance(value, str) and not value.startswith("#"):
                found.append(value)
            else:
                found += outside_refs(value)
    elif isinstance(schema, list):
        for value in schema:
            found += outside_refs(value)
    return found
