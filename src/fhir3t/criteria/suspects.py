"""Records that could be what a rule looks for but cannot be read as such (unread codes, suspects named
only in text): which value set they could belong to, and how a reason describes them."""
from __future__ import annotations

from fhir3t.messages import Message, Msg
from fhir3t.records.model import Res
from fhir3t.terminology import Code, Terminology, ValueSet

#: record types about one substance, whose text naming a drug says which drug the record is (a Condition's
#: text may list several diagnoses, so it never rules one out)
ONE_SUBSTANCE = frozenset({"MedicationStatement", "MedicationRequest", "MedicationAdministration", "MedicationDispense",
                           "AllergyIntolerance"})


def could_be(res: Res, vs: ValueSet | None, tx: Terminology, others: tuple[ValueSet, ...] = ()) -> bool:
    """Could this unread or suspect resource be one that `vs` describes?

    A record whose code cannot be read could be anything, unless its text names what it is: a drug
    record reading '来那度胺胶囊(瑞复美)' is lenalidomide, not a 3T drug. `others` are the value sets of
    the same type the criteria read, whose names may tell.
    """
    if vs is None or not res.raw or res.hit(vs) is not None:
        return True
    if res.bad in ("code", "medication[x]", "suspectEntity", "*") or not res.codes:
        if res.type in ONE_SUBSTANCE and res.texts and vs.names and any(o.names and o.named_in(res.texts) for o in others):
            return vs.named_in(res.texts) is not None  # its text says which drug it is
        return True  # what it is cannot be read: it could be anything
    if any(c in vs for c in res.codes):
        return True
    if any(vs.decides(c) for c in res.codes):
        return False  # an ICD-10 / ATC code decides by itself
    return vs.named_in(res.texts) is not None or not any(tx.systems.known(c[0]) for c in res.codes)


SUSPECT_CODED = Message("suspect.coded", "coded {code}, not in the value set")
SUSPECT_CODED_TEXT = Message("suspect.coded-text", "coded {code} {text}, not in the value set")
SUSPECT_UNCODED = Message("suspect.uncoded", "not coded, not in the value set")
SUSPECT_UNCODED_TEXT = Message("suspect.uncoded-text", "not coded {text}, not in the value set")


SUSPECT_ELSEWHERE = Message("suspect.elsewhere", "names {concept} in {element}, not in its code")
SUSPECT_STRAY = Message("suspect.stray", "coded {concept} in {element}, under no code system fhir3t knows: a code the "
                                         "value set lists")


def describe_suspect(res: Res, tx: Terminology, vs: ValueSet | None = None) -> Msg:
    """'coded RxNorm 1364445 'baricitinib 2 MG Oral Tablet', not in the value set' (a reason, not a log)."""
    hit = res.hit(vs) if vs is not None else None
    if hit is not None:
        return (SUSPECT_STRAY if hit.stray else SUSPECT_ELSEWHERE)(concept=hit.shown, element=hit.element)
    if res.why is not None:
        return res.why
    code = next(iter(res.codes), None)
    text = repr(res.texts[0]) if res.texts else ""
    if code is not None:
        shown = f"{tx.systems.name(code[0])} {code[1]}"
        return SUSPECT_CODED_TEXT(code=shown, text=text) if text else SUSPECT_CODED(code=shown)
    return SUSPECT_UNCODED_TEXT(text=text) if text else SUSPECT_UNCODED()


def split_codes(r: Res, vs: ValueSet) -> tuple[Code, Code] | None:
    """(a code of the record in `vs`, one a closed system's value set decides is not, or another code of a system a
    record carries one code of), when the codings of one record disagree (an ICD-10-CM code the set leaves out beside
    a SNOMED CT code it lists; a LOINC code of anti-HCV beside one of HBsAg): it is neither
    in the set nor out of it until someone says which coding is right. None when they agree."""
    inside = next((c for c in r.codes if c in vs), None)
    if inside is None:
        return None
    outside = next((c for c in r.codes if vs.rules_out(c, inside)), None)
    return (inside, outside) if outside is not None else None
