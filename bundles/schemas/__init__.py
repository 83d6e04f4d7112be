"""Versioned JSON Schemas that are part of the contract between the two sides.

Each schema is a JSON file next to this module, named ``<name>-v<major>.json`` (JSON Schema
draft 2020-12). :func:`validate` checks a document strictly and raises one error that names the
schema, the JSON path of the first problem and the offending value, so a producer that drifts
from the contract fails where it writes, and a reader refuses what it cannot trust.

Schemas are loaded once per process and never fetched: ``$ref`` resolves inside the file only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

import jsonschema
from jsonschema import Draft202012Validator

from bundles.errors import StellaError

RVA_V1: Final = "rva-v1"
"""The Risk Verdict Attestation predicate, version 1 (docs/rva.md)."""

KNOWN: Final = frozenset({RVA_V1})


class SchemaValidationError(StellaError):
    """A document does not conform to the versioned schema it claims to follow."""


class UnknownSchemaError(StellaError):
    """No schema of that name ships with this version."""


@cache
def load(name: str) -> Mapping[str, Any]:
    """The parsed schema ``name`` (e.g. ``"rva-v1"``), checked to be a valid 2020-12 schema."""
    if name not in KNOWN:
        raise UnknownSchemaError(
            f"no JSON schema named {name!r} in bundles/schemas",
            hint=f"known schemas: {', '.join(sorted(KNOWN))}",
        )
    text = resources.files(__package__).joinpath(f"{name}.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(doc)
    return doc


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _path(error: jsonschema.ValidationError) -> str:
    parts = ["$"]
    for item in error.absolute_path:
        parts.append(f"[{item}]" if isinstance(item, int) else f".{item}")
    return "".join(parts)


def validate(name: str, document: Any, *, source: str = "document") -> None:
    """Raise :class:`SchemaValidationError` unless ``document`` conforms to schema ``name``.

    The reported problem is the first in a stable order (by JSON path, then message), so the
    same bad document always gives the same message.
    """
    errors = sorted(
        _validator(name).iter_errors(document),
        key=lambda e: (list(map(str, e.absolute_path)), e.message),
    )
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise SchemaValidationError(
            f"{source}: does not conform to schema {name} at {_path(first)}: {first.message}{more}",
            hint="the producer and this reader disagree about the contract; see docs/rva.md",
        )


def is_valid(name: str, document: Any) -> bool:
    return bool(_validator(name).is_valid(document))
