"""`order-select`: the moment a drug the criteria read is being ordered (a 3T drug, a JAK inhibitor, a
depleting agent, ...) is the moment to mention the trial, and the last moment to keep a candidate in it.

Which orders count is not a list in the code: a selected draft MedicationRequest is read by the very
mechanism screening reads drug records with (records.relevance, the definition's read plan):

- coded: a code in a value set a criterion reads, directly or through the hospital's ConceptMap (a
  formulary code mapped to RxNorm);
- named: no such code, but its text or a coding's display names a drug of such a value set (the value
  sets' names: generic, brand and Chinese names, an RxNorm product's display "baricitinib 2 MG Oral
  Tablet [Olumiant]"). Screening never lets a name decide, so such an order is a suspect: starting it
  makes the criterion unknown, and the card says the drug looks like one the criteria read without
  saying it is one.

Every other order (a code the criteria do not read, or one fhir3t cannot read whose text names nothing
they read) is answered at once with no card, without fetching anything: order-select fires on every
order a clinician picks.

For an order that counts, the patient is screened twice: on the record as it is, and with the selected
orders as if started today. A patient who is eligible or a candidate now gets a card; when the orders
would make them ineligible (a washout they start, an exclusion they meet) or might (a named drug), the
card is a `warning` that says so first and offers to remove the draft order (a CDS Hooks 2.0 `delete`
action on it).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir3t.criteria.model import ScreeningResult
from fhir3t.enrolment import Status
from fhir3t.messages import Message, render
from fhir3t.pipeline import Definition
from fhir3t.records.concepts import concept_texts, medication_concept
from fhir3t.records.relevance import Why
from fhir3t.service.cards import SUMMARY_MAX, fit, md
from fhir3t.terminology import ValueSet
from fhir3t.textnorm import fold

ORDER_TYPES = ("MedicationRequest",)
#: a drug's name in a summary at most (the summary's other words and the study's short title take the rest)
DRUG_NAME_MAX = 40
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

WOULD_ELIGIBLE = Message("order.would-eligible", "Starting {drug} would exclude the patient from {study} (eligible now)")
WOULD_CANDIDATE = Message("order.would-candidate",
                          "Starting {drug} would exclude the patient from {study} (a possible candidate now)")
MAY_ELIGIBLE = Message("order.may-eligible", "Starting {drug} may exclude the patient from {study} (eligible now)")
MAY_CANDIDATE = Message("order.may-candidate",
                        "Starting {drug} may exclude the patient from {study} (a possible candidate now)")
BEFORE_ELIGIBLE = Message("order.before-eligible", "Before starting {drug}: the patient is eligible for {study}")
BEFORE_CANDIDATE = Message("order.before-candidate",
                           "Before starting {drug}: the patient is a possible candidate for {study}")
WOULD_MEET = Message("order.would-meet", "**{criterion}**: starting {drug} today meets this exclusion.")
WOULD_FAIL = Message("order.would-fail", "**{criterion}**: starting {drug} today fails this criterion.")
NAMED_LIKE = Message("order.named-like", "**{criterion}**: {drug} is named like {name}, a drug this criterion reads, "
                                         "but is not coded as one; if it is, starting it excludes the patient.")
NAMED_ONLY = Message("order.named-only", "**{criterion}**: {drug} is named, not coded, as a drug this criterion "
                                         "reads; if it is one, starting it excludes the patient.")
MAY_OTHER = Message("order.may-other", "**{criterion}**: starting {drug} today leaves this criterion undecided.")
CONSIDER = Message("order.consider", "Consider referring the patient to the study team before starting it, or "
                                     "removing the draft order.")
NOT_EXCLUDING = Message("order.not-excluding", "{drug} is a drug the study's criteria read; starting it today "
                                               "would not exclude the patient.")
REMOVE = Message("order.remove", "Remove the draft order for {drug}")
REMOVE_WOULD = Message("order.remove-would", "Remove the draft {drug} order (it would exclude the patient from {study})")
REMOVE_MAY = Message("order.remove-may", "Remove the draft {drug} order (it may exclude the patient from {study})")
THIS_DRUG = Message("card.order.this-drug", "this drug")


class OrderError(ValueError):
    """A malformed order-select context (400)."""


@dataclass(frozen=True)
class Selected:
    """A selected draft order: its reference in the EHR (`Type/id`, the delete action's target) and the resource."""

    ref: str
    resource: dict


@dataclass(frozen=True)
class OrderRead:
    """A selected order the criteria read: coded as a drug of `valuesets`, or (coded False) only named like one."""

    order: Selected
    coded: bool
    valuesets: tuple[ValueSet, ...]
    #: the name found in the order's text, for a named order (as the value set writes it)
    name: str | None = None


def selected_orders(context: dict[str, Any]) -> tuple[list[Selected], dict[str, dict]]:
    """The draft orders the clinician selected (context.selections -> context.draftOrders entries), and every
    resource of draftOrders by reference (a Medication an order points at may travel there)."""
    selections = context.get("selections")
    drafts = context.get("draftOrders")
    if not isinstance(selections, list) or not selections or not all(isinstance(s, str) for s in selections):
        raise OrderError("context.selections is required: the references of the orders selected")
    if not isinstance(drafts, dict) or drafts.get("resourceType") != "Bundle" or not isinstance(drafts.get("entry"), list):
        raise OrderError("context.draftOrders is required and must be a Bundle of the draft orders")
    chosen: list[Selected] = []
    others: dict[str, dict] = {}
    for e in drafts["entry"]:
        res = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            raise OrderError("context.draftOrders has an entry without a resource")
        ref = f"{res['resourceType']}/{res.get('id')}"
        others[ref] = res
        full = e.get("fullUrl")
        if isinstance(full, str):
            others[full] = res
        if ref in selections:
            chosen.append(Selected(ref, res))
    return chosen, others


def _resolver(order: dict, others: dict[str, dict]) -> Callable[[str], dict | None]:
    contained = {f"#{c.get('id')}": c for c in order.get("contained") or () if isinstance(c, dict)}
    return lambda ref: contained.get(ref) or others.get(ref)


def read_orders(definition: Definition, orders: Sequence[Selected], patient_id: str,
                others: dict[str, dict] | None = None) -> list[OrderRead]:
    """The selected orders for this patient that the criteria read, coded or named (see the module doc)."""
    rel, plan = definition.relevance, definition.plan
    out = []
    for sel in orders:
        o = sel.resource
        rtype = o.get("resourceType")
        if rtype not in ORDER_TYPES or rtype not in plan.types:
            continue
        subject = (o.get("subject") or {}).get("reference") if isinstance(o.get("subject"), dict) else None
        if isinstance(subject, str) and subject.rstrip("/").split("/")[-1] != patient_id:
            continue
        resolve = _resolver(o, others or {})
        judged = rel.judge(rtype, o, resolve)
        if judged is None:
            continue
        if judged.why is Why.CODE:
            sets = tuple(vs for vs in plan.valuesets.get(rtype, ()) if any(c in vs for c in judged.codes))
            out.append(OrderRead(sel, True, sets))
        elif judged.why in (Why.SUSPECT, Why.UNREADABLE):
            sets = tuple(rel.suspects(rtype, judged.codes, judged.texts))
            if sets:
                out.append(OrderRead(sel, False, sets, _name_found(sets[0], o, resolve)))
    return out


def _name_found(vs: ValueSet, order: dict, resolve: Callable[[str], dict | None]) -> str | None:
    """The value set's name as the order's text uses it ('baricitinib', '巴瑞替尼'), as the set writes it."""
    texts = concept_texts(medication_concept(order, resolve))
    folded = vs.named_in(texts)
    if folded is None:
        return None
    return next((n for n in (*vs.set_names, *(n for ns in vs.concept_names.values() for n in ns)) if fold(n) == folded),
                folded)


def as_started(orders: Sequence[OrderRead], patient_id: str, today: date) -> dict:
    """The orders as if signed and started today: a Bundle to screen with the record."""
    entries = []
    for i, o in enumerate(orders):
        started = copy.deepcopy(o.order.resource)
        started.update(status="active", intent=started.get("intent") or "order", authoredOn=today.isoformat(),
                       subject={"reference": f"Patient/{patient_id}"})
        started["id"] = f"fhir3t-draft-{i}"
        entries.append({"resource": started})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def drug_name(order: dict, lang: str = "en") -> str:
    """What the order is called (its text, or a coding's display), for the card: plain and short."""
    cc: dict = order["medicationCodeableConcept"] if isinstance(order.get("medicationCodeableConcept"), dict) else {}
    names = [cc.get("text")] + [c.get("display") for c in cc.get("coding") or () if isinstance(c, dict)]
    name = next((n for n in names if isinstance(n, str) and n.strip()), None)
    if name is None:
        return render(THIS_DRUG(), lang)
    return fit(" ".join(_CONTROL.sub(" ", name).split()), DRUG_NAME_MAX)


@dataclass(frozen=True)
class Effect:
    """What starting the orders would do: criteria it would fail, and criteria it would leave undecided."""

    failing: tuple[str, ...]
    undecided: tuple[str, ...]

    @property
    def excludes(self) -> bool:
        return bool(self.failing or self.undecided)


def effect_of(now: ScreeningResult, after: ScreeningResult) -> Effect:
    return Effect(tuple(c for c in after.failing if c not in now.failing),
                  tuple(c for c in after.unknown if c not in now.unknown and c not in now.failing))


def order_summary(now: ScreeningResult, eff: Effect, drug: str, definition: Definition, lang: str = "en") -> str:
    eligible = now.status == Status.ELIGIBLE
    if eff.failing:
        msg = WOULD_ELIGIBLE if eligible else WOULD_CANDIDATE
    elif eff.undecided:
        msg = MAY_ELIGIBLE if eligible else MAY_CANDIDATE
    else:
        msg = BEFORE_ELIGIBLE if eligible else BEFORE_CANDIDATE
    study = definition.study.short_title
    text = render(msg(drug=drug, study=study), lang)
    if len(text) > SUMMARY_MAX:  # the drug's name gives way, never the sentence
        room = SUMMARY_MAX - len(render(msg(drug="", study=study), lang))
        text = render(msg(drug=fit(drug, max(room, 8)), study=study), lang)
    return fit(text, SUMMARY_MAX)


def order_head(eff: Effect, reads: Sequence[OrderRead], drug: str, definition: Definition, lang: str = "en") -> list[str]:
    """The detail's first paragraphs: what starting the order does to each criterion it touches."""
    crits = {c.id: c for c in definition.criteria.criteria}
    kinds = {c.id: c.kind for c in definition.criteria.criteria}
    named = next((r for r in reads if not r.coded), None)
    lines = []
    for cid in eff.failing:
        title = md(crits[cid].title_text.get(lang)) if cid in crits else md(cid)
        msg = WOULD_MEET if kinds.get(cid) == "exclusion" else WOULD_FAIL
        lines.append(render(msg(criterion=title, drug=md(drug)), lang))
    for cid in eff.undecided:
        title = md(crits[cid].title_text.get(lang)) if cid in crits else md(cid)
        if named is not None and crits.get(cid) is not None and _reads_any(crits[cid], named.valuesets):
            if named.name and fold(named.name) != fold(drug):
                lines.append(render(NAMED_LIKE(criterion=title, drug=md(drug), name=md(named.name)), lang))
            else:
                lines.append(render(NAMED_ONLY(criterion=title, drug=md(drug)), lang))
        else:
            lines.append(render(MAY_OTHER(criterion=title, drug=md(drug)), lang))
    if not lines:
        return [render(NOT_EXCLUDING(drug=md(drug)), lang)]
    return ["\n".join(lines), render(CONSIDER(), lang)]


def _reads_any(criterion: Any, valuesets: Sequence[ValueSet]) -> bool:
    wanted = {id(vs) for vs in valuesets}
    return any(r.valueset is not None and id(r.valueset) in wanted for r in criterion.rule.reads())


def remove_suggestions(reads: Sequence[OrderRead], eff: Effect, definition: Definition, lang: str,
                       new_uuid: Callable[[], str]) -> list[dict]:
    """One suggestion per selected order the criteria read: remove the draft (CDS Hooks 2.0 `delete`)."""
    out = []
    why = REMOVE_WOULD if eff.failing else REMOVE_MAY
    for r in reads:
        drug = drug_name(r.order.resource, lang)
        out.append({"label": fit(render(REMOVE(drug=drug), lang), 200), "uuid": new_uuid(), "isRecommended": False,
                    "actions": [{"type": "delete", "resourceId": r.order.ref,
                                 "description": render(why(drug=drug, study=definition.study.value), lang)}]})
    return out


__all__ = ["Effect", "OrderError", "OrderRead", "Selected", "as_started", "drug_name", "effect_of", "order_head",
           "order_summary", "read_orders", "remove_suggestions", "selected_orders"]
