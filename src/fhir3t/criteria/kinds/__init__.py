"""The rule kinds, one module each: adding a kind is adding a module here (plus its tests).

Every module defines a `Kind` subclass with `kind = "<name used in the criteria file>"`; this
package imports them all and `KINDS` maps names to classes.
"""
from __future__ import annotations

import importlib
import pkgutil

from fhir3t.criteria.base import Kind


def _discover() -> dict[str, type[Kind]]:
    found: dict[str, type[Kind]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Kind) and obj is not Kind and getattr(obj, "kind", None) \
                    and obj.__module__ == module.__name__:
                if obj.kind in found:
                    raise RuntimeError(f"rule kind {obj.kind!r} defined twice ({found[obj.kind].__module__}, {module.__name__})")
                found[obj.kind] = obj
    return found


KINDS: dict[str, type[Kind]] = _discover()
