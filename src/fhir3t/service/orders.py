"""`order-select`: the moment a drug the criteria read is being ordered (a 3T drug, a JAK inhibitor, a
depleting agent, ...) is the moment to mention the trial.

Which orders count is not a list in the code: an order counts when its medication code is in a value set
a criterion reads for MedicationRequest (records.relevance: `Why.CODE`), so the trigger follows the
criteria like the prefetch does. Every other order is answered at once with no card, without fetching
anything (order-select fires on every order a clinician picks).

For an order that counts, the patient is screened twice: on the record as it is, and with the selected
orders as if started today. A patient who is eligible or a candidate now gets a card; when the order
would make them ineligible (a washout it starts, an exclusion it meets), the card says so first.
"""
from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

from fhir3t.criteria.load import CriteriaSet
from fhir3t.criteria.model import ScreeningResult
from fhir3t.enrolment import Status
from fhir3t.messages import Words, table
from fhir3t.pipeline import Definition
from fhir3t.records.relevance import Why
from fhir3t.service.cards import detail, fit, md
from fhir3t.study import Study

ORDER_TYPES = ("MedicationRequest",)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OrderError(ValueError):
    """A malformed order-select context (400)."""


def selected_orders(context: dict[str, Any]) -> list[dict]:
    """The draft orders the clinician selected (context.selections -> context.draftOrders entries)."""
    selections = context.get("selections")
    drafts = context.get("draftOrders")
    if not isinstance(selections, list) or not selections or not all(isinstance(s, str) for s in selections):
        raise OrderError("context.selections is required: the references of the orders selected")
    if not isinstance(drafts, dict) or drafts.get("resourceType") != "Bundle" or not isinstance(drafts.get("entry"), list):
        raise OrderError("context.draftOrders is required and must be a Bundle of the draft orders")
    chosen = []
    for e in drafts["entry"]:
        res = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            raise OrderError("context.draftOrders has an entry without a resource")
        if f"{res['resourceType']}/{res.get('id')}" in selections:
            chosen.append(res)
    return chosen


def relevant(definition: Definition, orders: list[dict], patient_id: str) -> list[dict]:
    """The selected orders whose drug a criterion reads (by code), for this patient."""
    out = []
    for o in orders:
        if o.get("resourceType") not in ORDER_TYPES:
            continue
        subject = (o.get("subject") or {}).get("reference") if isinstance(o.get("subject"), dict) else None
        if isinstance(subject, str) and subject.rstrip("/").split("/")[-1] != patient_id:
            continue
        judged = definition.relevance.judge(o["resourceType"], o, _contained(o))
        if judged is not None and judged.why is Why.CODE:
            out.append(o)
    return out


def _contained(order: dict):  # -> Resolve
    contained = {f"#{c.get('id')}": c for c in order.get("contained") or () if isinstance(c, dict)}
    return lambda ref: contained.get(ref)


def as_started(orders: list[dict], patient_id: str, today: date) -> dict:
    """The orders as if signed and started today: a Bundle to screen with the record."""
    entries = []
    for i, o in enumerate(orders):
        started = copy.deepcopy(o)
        started.update(status="active", intent=started.get("intent") or "order", authoredOn=today.isoformat(),
                       subject={"reference": f"Patient/{patient_id}"})
        started["id"] = f"fhir3t-draft-{i}"
        entries.append({"resource": started})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


W = table("card.order", {
    "this-drug": "this drug",
    "exclude-eligible": "Starting {drug} would exclude the patient from {study} (eligible now)",
    "exclude-candidate": "Starting {drug} would exclude the patient from {study} (a possible candidate now)",
    "before-eligible": "Before starting {drug}: the patient is eligible for {study}",
    "before-candidate": "Before starting {drug}: the patient is a possible candidate for {study}",
    "would-exclude": "**Starting {drug} today would make the patient ineligible**:",
    "line": "- **{title}** ({id}): {reason}",
    "consider": "Consider referring the patient to the study team before starting it.",
    "would-not": "The order ({drug}) is a drug the study's criteria read; as screened today, starting it would not "
                 "exclude the patient from {study}.",
})


def drug_name(order: dict, definition: Definition | None = None, lang: str = "en") -> str | None:
    """What the order is called, for the card; plain and short (None: no name). In English its coding's display or
    text as the EHR wrote it; in another language the name the value sets give its code there (巴瑞替尼 for RxNorm
    2047232), else the EHR's."""
    if lang != "en" and definition is not None:
        for code in definition.tx.codes(order.get("medicationCodeableConcept")):
            for vs in definition.tx.valuesets.values():
                text = vs.displays.get(code)
                if text is not None and text.get(lang) != text.en:
                    return fit(_CONTROL.sub(" ", text.get(lang).strip()), 40)
    cc: dict = order["medicationCodeableConcept"] if isinstance(order.get("medicationCodeableConcept"), dict) else {}
    names = [cc.get("text")] + [c.get("display") for c in cc.get("coding") or () if isinstance(c, dict)]
    name = next((n for n in names if isinstance(n, str) and n.strip()), None)
    return fit(_CONTROL.sub(" ", name.strip()), 40) if name else None


def order_summary(now: ScreeningResult, after: ScreeningResult, drug: str | None, study: Study, lang: str = "en") -> str:
    w = Words(W, lang)
    excluded, eligible = after.status == Status.INELIGIBLE, now.status == Status.ELIGIBLE  # one whole sentence each
    which = {(True, True): "exclude-eligible", (True, False): "exclude-candidate",
             (False, True): "before-eligible", (False, False): "before-candidate"}[excluded, eligible]
    return fit(w(which, drug=drug or w("this-drug"), study=study.said("short_title", lang)))


def order_detail(now: ScreeningResult, after: ScreeningResult, drug: str | None, criteria: CriteriaSet, study: Study,
                 lang: str = "en") -> str:
    from fhir3t.messages.render import template

    w = Words(W, lang)
    shown = md(drug) if drug else w("this-drug")
    titles = {c.id: c.title_text.get(lang) for c in criteria.criteria}
    newly = [c for c in after.criteria if c.id in set(after.failing) - set(now.failing)]
    if newly:
        lines = [template(W["would-exclude"].id, lang).format(drug=shown), ""]
        lines += [template(W["line"].id, lang).format(title=md(titles.get(c.id, c.id)), id=md(c.id),
                                                       reason=md(c.reason_in(lang))) for c in newly]
        lines += ["", w("consider"), "", "---", ""]
    else:
        lines = [template(W["would-not"].id, lang).format(drug=shown, study=md(study.value)), "", "---", ""]
    return "\n".join(lines) + detail(now, criteria, study, lang)


__all__ = ["OrderError", "as_started", "drug_name", "order_detail", "order_summary", "relevant", "selected_orders"]
