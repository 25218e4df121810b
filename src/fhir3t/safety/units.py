"""UCUM-aware unit conversion for graded labs, driven by profiles/safety/unit-conversions.json.

Arithmetic is done in Decimal so that "exactly 3 × ULN" stays exact after a mg/dL → µmol/L
conversion (binary floats would put 1.5 × 88.4 a hair above or below the bound).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

UCUM = "http://unitsofmeasure.org"


def dec(value: object) -> Decimal | None:
    """A JSON number (or numeric string) as Decimal via its shortest repr; None if not a finite number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str):
        return None
    try:
        d = Decimal(value.strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


@dataclass(frozen=True)
class UnitKind:
    name: str
    canonical: str
    factors: dict[str, Decimal]  # UCUM code -> factor to the canonical unit


@dataclass(frozen=True)
class Units:
    kinds: dict[str, UnitKind]
    aliases: dict[str, str]

    @classmethod
    def from_data(cls, data: dict) -> Units:
        kinds = {}
        for name, spec in data["kinds"].items():
            factors = {u: dec(f) for u, f in spec["factors"].items()}
            if any(v is None or v <= 0 for v in factors.values()):
                raise ValueError(f"unit kind {name!r}: factors must be positive numbers")
            kinds[name] = UnitKind(name, spec["canonical"], factors)  # type: ignore[arg-type]
        return cls(kinds, dict(data.get("aliases", {})))

    def ucum(self, quantity: dict) -> str | None:
        """The UCUM code of a Quantity: its code if the system is UCUM (or absent), else its unit text via aliases."""
        code, unit = quantity.get("code"), quantity.get("unit")
        system = quantity.get("system")
        if isinstance(code, str) and code.strip() and system in (None, UCUM):
            return self._alias(code.strip())
        if isinstance(unit, str) and unit.strip():
            return self._alias(unit.strip())
        return None

    def _alias(self, text: str) -> str:
        if text in self.aliases:
            return self.aliases[text]
        low = text.lower()
        for k, v in self.aliases.items():
            if k.lower() == low:
                return v
        return text

    def convert(self, kind: str, value: Decimal, unit: str) -> Decimal | None:
        """value in `unit` → the kind's canonical unit; None when the unit is not accepted for this kind."""
        uk = self.kinds[kind]
        factor = uk.factors.get(unit)
        if factor is None:
            low = unit.lower()
            factor = next((f for u, f in uk.factors.items() if u.lower() == low), None)
        return None if factor is None else value * factor
