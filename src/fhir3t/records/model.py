"""One patient's resources, cleaned and indexed for the rules (no I/O here)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from fhir3t.dates import Span
from fhir3t.messages import Msg
from fhir3t.terminology import Code, ValueSet


@dataclass(frozen=True, slots=True)
class Hit:
    """A criterion's concept named in an element of a record no rule interprets: a drug as the
    `reaction.substance` of an allergy coded 'Drug allergy', a cancer as a Condition's `evidence`, a test
    in an Observation's extension. It keeps the criteria reading `vs` from treating the record as absent."""

    vs: ValueSet
    element: str  # "AllergyIntolerance.reaction.substance"
    shown: str  # how the concept was written: "RxNorm <code> '<drug>'", "'<a name in Chinese>'"
    #: the code is one `vs` lists, written under no code system or one fhir3t does not know (an HL7 v2 name such
    #: as 'LN', a converter's placeholder): which system it is in is not fhir3t's to guess (records.relevance)
    stray: bool = False
    #: the type whose rules read `vs` when it is not the record's own ("Condition" for a malignancy coded in a
    #: pathology report's conclusion, a contained Condition): the record is a suspect of that type's rules
    of_type: str = ""


@dataclass(slots=True)
class Res:
    """A kept resource (or one part of it, a panel's component): the raw JSON plus what every rule
    asks of it, computed once.

    `why` is empty for a resource the rules can read; otherwise it says what could not be read
    (naming the element, never the value) and the resource sits in `PatientRecord.unread`, where it
    keeps absence-based rules from counting it as absent.
    """

    type: str
    raw: dict
    ref: str  # evidence reference: "Type/id" as on the source (a component: its panel's)
    codes: tuple[Code, ...]
    span: Span | None
    where: str
    date_text: str | None = None
    why: Msg | None = None
    #: folded display / text of its main code (what the name net reads)
    texts: tuple[str, ...] = ()
    #: for a component, hasMember or report result: the resource it came with ("Observation/panel")
    part_of: str = ""
    #: for an unread resource, the element that could not be read ("code", "medication[x]",
    #: "clinicalStatus", ...; "*" when the source could not hand the entry over at all; "version" for
    #: copies whose order cannot be told; "held" for a whole resource that is no record of its own: contained in
    #: a record no rule reads, or carried by an operation's Parameters)
    bad: str = ""
    #: criteria's concepts named in elements no rule interprets (see Hit)
    hits: tuple[Hit, ...] = ()

    def hit(self, vs: ValueSet) -> Hit | None:
        return next((h for h in self.hits if h.vs is vs), None)

    def dated_after(self, day: date) -> bool:
        return self.span is not None and self.span.lo > day


@dataclass
class PatientRecord:
    key: str  # "Patient/<id>" (or the urn:uuid fullUrl of an id-less Patient)
    patient: dict | None
    by_type: dict[str, list[Res]] = field(default_factory=dict)
    index: dict[str, Res] = field(default_factory=dict)
    source: str = ""
    #: resources (or source entries) of read types that could not be read, by type; "*" holds entries
    #: whose type is not known at all
    unread: dict[str, list[Res]] = field(default_factory=dict)
    #: resources no value set's code matches whose text names a value set's concept, by type
    #: (an RxNorm product, a hospital's own lab code): rules look at them only to stay unknown
    suspects: dict[str, list[Res]] = field(default_factory=dict)
    #: elements of the Patient its copies disagree on, when their order cannot be told (sources.versions):
    #: `patient` is one of them, and a rule reading one of these elements cannot decide
    disputed: frozenset[str] = frozenset()
    #: why the Patient itself cannot be read (a modifier extension, implicitRules, an element R4 does not define):
    #: a rule reading the Patient cannot decide
    patient_why: Msg | None = None
    _code_index: dict[str, dict[Code, list[Res]]] = field(default_factory=dict, repr=False)

    def of(self, *types: str) -> list[Res]:
        if len(types) == 1:
            return self.by_type.get(types[0], [])
        out: list[Res] = []
        for t in types:
            out.extend(self.by_type.get(t, []))
        return out

    def unread_of(self, rtype: str) -> list[Res]:
        """Unread resources that may be of this type (entries of unknown type included)."""
        return self.unread.get(rtype, []) + self.unread.get("*", [])

    def resolve(self, reference: str | None) -> Res | None:
        return self.index.get(reference) if reference else None

    def code_index(self, rtype: str) -> dict[Code, list[Res]]:
        """Resources of a type by each of their codes (built on first use)."""
        idx = self._code_index.get(rtype)
        if idx is None:
            idx = {}
            for r in self.by_type.get(rtype, ()):
                for c in r.codes:
                    idx.setdefault(c, []).append(r)
            self._code_index[rtype] = idx
        return idx
