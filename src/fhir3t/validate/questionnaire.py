"""A QuestionnaireResponse checked against its Questionnaire (R4 QuestionnaireResponse rules).

The Questionnaire is found by the response's `questionnaire` canonical (version ignored) among the
Questionnaires of the same Bundle, those given as context (`Options.context`, `--supporting`), and the
ones the profiles package ships (fhir3t's screening checklist). Without it nothing is checked here
(one information issue says so). With it: every linkId exists at its place; display and group items carry
no answers; an answer has the item's type; an item that does not repeat has one answer and appears once;
answers are among the answer options; required items are answered when the response is completed; an
item that enableWhen disables has no answer; and the core extensions that constrain answers (minValue,
maxValue, minLength, maxDecimalPlaces, regex, mimeType, maxSize, minOccurs, maxOccurs, unitOption,
referenceResource) hold.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from fhir3t.messages import table
from fhir3t.r4defs import resource_types
from fhir3t.validate.issues import Issue


def _listed(value: object) -> list:
    """A repeating element as a list; any other shape (a number, a string, an object: the schema's error,
    reported there) as no items, so a check reading it never stops on it."""
    return value if isinstance(value, list) else []

SD = "http://hl7.org/fhir/StructureDefinition/"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-"

#: quoted values ({link}, {got}, a regex) come quoted by the caller (repr), as the English shows them
MESSAGES = table("validate.questionnaire", {
    "not-found": "the Questionnaire {url} is not in the input, the context or the package, so answers are not "
                 "checked against it",
    "inner": "an enableWhen cannot refer to {link}, an item inside the item it enables",
    "link-id": "linkId {link} not found in the Questionnaire at this place",
    "no-answers": "items of type {type} cannot have answers",
    "type": "answer value must be of the type {want}, not {got}",
    "once": "only one answer is allowed (the item does not repeat)",
    "item-once": "only one response item with linkId {link} is allowed (the item does not repeat)",
    "required": "no answer found for required item {link}",
    "required-group": "no sub-items found for required group {link}",
    "disabled": "item {link} has an answer, though enableWhen disables it",
    "option": "the answer is not among the item's answer options",
    "option-type": "the answer options have no value of type {type}",
    "exclusive": "an exclusive answer option is selected together with other answers",
    "min": "the answer is less than the allowed minimum ({limit})",
    "max": "the answer is greater than the allowed maximum ({limit})",
    "min-length": "the answer is shorter than the required minimum length of {limit}",
    "max-length": "the answer is longer than the allowed maximum length of {limit}",
    "decimals": "the answer has more decimal places than allowed ({limit})",
    "regex": "the answer does not match the required format (regex {limit})",
    "mime": "the attachment's type {got} is not allowed (allowed: {limit})",
    "size": "the attachment is larger than allowed ({limit} bytes)",
    "min-occurs": "the minimum number of answers is {limit}",
    "max-occurs": "the maximum number of answers is {limit}",
    "units": "the quantity's unit is not among the allowed units",
    "units-compare-minimum": "the quantity cannot be compared to the allowed minimum (units not comparable)",
    "units-compare-maximum": "the quantity cannot be compared to the allowed maximum (units not comparable)",
    "ref-type": "the reference's resource type {got} is not allowed here (allowed: {limit})",
    "ref-unknown": "the reference's resource type {got} is not an R4 resource type",
})

#: item type -> the answer value[x] names allowed
ANSWER_TYPES: dict[str, tuple[str, ...]] = {
    "boolean": ("valueBoolean",), "decimal": ("valueDecimal",), "integer": ("valueInteger",),
    "date": ("valueDate",), "dateTime": ("valueDateTime",), "time": ("valueTime",),
    "string": ("valueString",), "text": ("valueString",), "url": ("valueUri",),
    "choice": ("valueCoding", "valueString"), "open-choice": ("valueCoding", "valueString"),
    "attachment": ("valueAttachment",), "reference": ("valueReference",), "quantity": ("valueQuantity",),
}
NO_ANSWERS = frozenset({"display", "group", "question"})
#: UCUM units this check can compare across (unit -> (dimension, factor to the base unit))
_UNITS = {"m": ("L", 1.0), "km": ("L", 1000.0), "cm": ("L", 0.01), "mm": ("L", 0.001), "[mi_i]": ("L", 1609.344),
          "g": ("M", 1.0), "kg": ("M", 1000.0), "mg": ("M", 0.001), "[lb_av]": ("M", 453.59237)}

Lookup = Callable[[str], dict | None]


def _ext(item: dict, name: str) -> list[Any]:
    out: list[Any] = []
    for e in _listed(item.get("extension")):
        if isinstance(e, dict) and e.get("url") in (SD + name, SD + "questionnaire-" + name, SDC + name):
            out.extend(v for k, v in e.items() if k.startswith("value"))
    return out


def _value(d: dict) -> tuple[str, Any] | None:
    return next(((k, v) for k, v in d.items() if k.startswith("value")), None)


def check_response(qr: dict, find: Lookup) -> list[Issue]:
    """Issues of a QuestionnaireResponse against its Questionnaire (expressions relative to the response)."""
    url = qr.get("questionnaire")
    if not isinstance(url, str):
        return []
    q = find(url.split("|", 1)[0])
    if q is None:
        return [Issue("information", "not-found", MESSAGES["not-found"](url=url), "QuestionnaireResponse")]
    answers = _all_answers(qr.get("item"))
    completed = qr.get("status") in ("completed", "amended")
    return list(_items(q.get("item"), qr.get("item"), "QuestionnaireResponse", answers, completed))


def check_questionnaire(q: dict) -> Iterator[Issue]:
    """A Questionnaire's own rule the response depends on: an enableWhen cannot refer to an item inside
    the item it enables (that item is never answered while it is disabled)."""
    def inner(item: dict) -> set[str]:
        out: set[str] = set()
        for c in _listed(item.get("item")):
            if isinstance(c, dict):
                out.add(str(c.get("linkId")))
                out |= inner(c)
        return out

    def walk(items: Any, where: str) -> Iterator[Issue]:
        for i, it in enumerate(items if isinstance(items, list) else ()):
            if not isinstance(it, dict):
                continue
            at = f"{where}.item[{i}]"
            below = inner(it)
            for j, c in enumerate(_listed(it.get("enableWhen"))):
                if isinstance(c, dict) and str(c.get("question")) in below:
                    yield Issue("error", "business-rule", MESSAGES["inner"](link=repr(c.get("question"))),
                                f"{at}.enableWhen[{j}]")
            yield from walk(it.get("item"), at)

    yield from walk(q.get("item"), "Questionnaire")


def _all_answers(items: Any) -> dict[str, list[dict]]:
    """linkId -> every answer given to it anywhere in the response (enableWhen looks them up)."""
    out: dict[str, list[dict]] = {}

    def walk(its: Any) -> None:
        for it in its if isinstance(its, list) else ():
            if not isinstance(it, dict):
                continue
            ans = [a for a in _listed(it.get("answer")) if isinstance(a, dict)]
            out.setdefault(str(it.get("linkId")), []).extend(ans)
            walk(it.get("item"))
            for a in ans:
                walk(a.get("item"))

    walk(items)
    return out


def _items(q_items: Any, r_items: Any, where: str, answers: dict[str, list[dict]], completed: bool,
           enabled_parent: bool = True) -> Iterator[Issue]:
    defs = {qi["linkId"]: qi for qi in _listed(q_items) if isinstance(qi, dict) and isinstance(qi.get("linkId"), str)}
    given: dict[Any, list[tuple[int, dict]]] = {}
    for i, ri in enumerate(r_items if isinstance(r_items, list) else ()):
        if not isinstance(ri, dict):
            continue
        at = f"{where}.item[{i}]"
        link = ri.get("linkId")
        qi = defs.get(link) if isinstance(link, str) else None  # (another shape: the schema's error)
        if qi is None:
            yield Issue("error", "not-found", MESSAGES["link-id"](link=repr(link)), at)
            continue
        given.setdefault(link, []).append((i, ri))
        yield from _item(qi, ri, at, answers, completed)
    for link, qi in defs.items():
        enabled = enabled_parent and _enabled(qi, answers)
        got = given.get(link, [])
        if len(got) > 1 and not qi.get("repeats"):
            yield Issue("error", "structure", MESSAGES["item-once"](link=repr(link)), f"{where}.item[{got[1][0]}]")
        if not enabled:
            for i, ri in got:
                if _has_answer(ri):
                    yield Issue("error", "business-rule", MESSAGES["disabled"](link=repr(link)), f"{where}.item[{i}]")
            continue
        if completed and qi.get("required") is True and qi.get("type") != "display":
            if qi.get("type") == "group":
                if not any(r.get("item") for _, r in got):
                    yield Issue("error", "required", MESSAGES["required-group"](link=repr(link)), where)
            elif not any(r.get("answer") for _, r in got):
                yield Issue("error", "required", MESSAGES["required"](link=repr(link)), where)


def _has_answer(ri: dict) -> bool:
    return bool(ri.get("answer")) or any(_has_answer(x) for x in _listed(ri.get("item")) if isinstance(x, dict))


def _item(qi: dict, ri: dict, at: str, answers: dict[str, list[dict]], completed: bool) -> Iterator[Issue]:
    qtype = qi.get("type") if isinstance(qi.get("type"), str) else None  # (another shape: the schema's error)
    ans = [a for a in _listed(ri.get("answer")) if isinstance(a, dict)]
    if ans and qtype in NO_ANSWERS:
        yield Issue("error", "structure", MESSAGES["no-answers"](type=str(qtype)), at)
        ans = []
    if len(ans) > 1 and not qi.get("repeats"):
        yield Issue("error", "structure", MESSAGES["once"](), at)
    for n in _ext(qi, "minOccurs"):
        if isinstance(n, int) and len(ans) < n:
            yield Issue("error", "structure", MESSAGES["min-occurs"](limit=str(n)), at)
    for n in _ext(qi, "maxOccurs"):
        if isinstance(n, int) and len(ans) > n:
            yield Issue("error", "structure", MESSAGES["max-occurs"](limit=str(n)), at)
    exclusive = [o for o in _listed(qi.get("answerOption")) if isinstance(o, dict) and True in _ext(o, "optionExclusive")]
    for j, a in enumerate(ans):
        a_at = f"{at}.answer[{j}]"
        yield from _answer(qi, a, a_at)
        if len(ans) > 1 and any(_same(_value(a), _value(o)) for o in exclusive):
            yield Issue("error", "business-rule", MESSAGES["exclusive"](), a_at)
        yield from _items(qi.get("item"), a.get("item"), a_at, answers, completed)
    if ri.get("item"):
        yield from _items(qi.get("item"), ri.get("item"), at, answers, completed)


def _answer(qi: dict, a: dict, at: str) -> Iterator[Issue]:
    qtype = str(qi.get("type"))
    got = _value(a)
    want = ANSWER_TYPES.get(qtype)
    if got is None or want is None:
        return
    key, v = got
    if key not in want:
        yield Issue("error", "structure", MESSAGES["type"](want=qtype, got=key[5:6].lower() + key[6:]), at)
        return
    options = [v for o in _listed(qi.get("answerOption")) if isinstance(o, dict) and (v := _value(o)) is not None]
    if options and not (qtype == "open-choice" and key == "valueString"):
        typed = [o for o in options if o[0] == key]
        if not typed:
            yield Issue("error", "structure", MESSAGES["option-type"](type=key[5:]), at)
        elif not any(_same(got, o) for o in typed):
            yield Issue("error", "value", MESSAGES["option"](), at)
    yield from _limits(qi, key, v, at)


def _same(a: tuple[str, Any] | None, b: tuple[str, Any] | None) -> bool:
    if a is None or b is None or a[0] != b[0]:
        return False
    if a[0] == "valueCoding":
        return isinstance(a[1], dict) and isinstance(b[1], dict) and (
            a[1].get("system"), a[1].get("code")) == (b[1].get("system"), b[1].get("code"))
    return bool(a[1] == b[1])


def _limits(qi: dict, key: str, v: Any, at: str) -> Iterator[Issue]:
    if key in ("valueInteger", "valueDecimal", "valueDate", "valueDateTime", "valueTime"):
        for lim in _ext(qi, "minValue"):
            if _comparable(v, lim) and v < lim:
                yield Issue("error", "value", MESSAGES["min"](limit=str(lim)), at)
        for lim in _ext(qi, "maxValue"):
            if _comparable(v, lim) and v > lim:
                yield Issue("error", "value", MESSAGES["max"](limit=str(lim)), at)
    if key == "valueDecimal":
        for lim in _ext(qi, "maxDecimalPlaces"):
            if isinstance(lim, int) and isinstance(v, float) and len(repr(v).partition(".")[2]) > lim:
                yield Issue("error", "value", MESSAGES["decimals"](limit=str(lim)), at)
    yield from _limits_of_kind(qi, key, v, at)


def _limits_of_kind(qi: dict, key: str, v: Any, at: str) -> Iterator[Issue]:
    if key == "valueString" and isinstance(v, str):
        for lim in _ext(qi, "minLength"):
            if isinstance(lim, int) and len(v) < lim:
                yield Issue("error", "value", MESSAGES["min-length"](limit=str(lim)), at)
        lim = qi.get("maxLength")
        if isinstance(lim, int) and len(v) > lim:
            yield Issue("error", "value", MESSAGES["max-length"](limit=str(lim)), at)
        for rx in _ext(qi, "regex"):
            try:
                ok = re.fullmatch(rx, v) is not None
            except (re.error, TypeError):
                continue
            if not ok:
                yield Issue("error", "value", MESSAGES["regex"](limit=repr(rx)), at)
    if key == "valueAttachment" and isinstance(v, dict):
        mimes = [m for m in _ext(qi, "mimeType") if isinstance(m, str)]
        if mimes and v.get("contentType") not in mimes:
            yield Issue("error", "value", MESSAGES["mime"](got=repr(v.get("contentType")), limit=", ".join(mimes)), at)
        for lim in _ext(qi, "maxSize"):
            size = v.get("size")
            if isinstance(size, int) and isinstance(lim, (int, float)) and size > lim:
                yield Issue("error", "value", MESSAGES["size"](limit=str(lim)), at)
    if key == "valueQuantity" and isinstance(v, dict):
        yield from _quantity(qi, v, at)
    if key == "valueReference" and isinstance(v, dict):
        ref = v.get("reference")
        allowed = [c for c in _ext(qi, "referenceResource") if isinstance(c, str)]
        if isinstance(ref, str) and "/" in ref and not ref.startswith(("#", "urn:")):
            rtype = ref.rstrip("/").split("/")[-2]
            if rtype not in resource_types():
                yield Issue("error", "value", MESSAGES["ref-unknown"](got=repr(rtype)), at)
            elif allowed and rtype not in allowed:
                yield Issue("error", "value", MESSAGES["ref-type"](got=repr(rtype), limit=", ".join(allowed)), at)


def _comparable(v: Any, lim: Any) -> bool:
    num = (int, float)
    return (isinstance(v, num) and isinstance(lim, num) and not isinstance(v, bool)) or (
        isinstance(v, str) and isinstance(lim, str))


def _quantity(qi: dict, v: dict, at: str) -> Iterator[Issue]:
    options = [o for o in _ext(qi, "unitOption") if isinstance(o, dict)]
    if options and not any((o.get("system"), o.get("code")) == (v.get("system"), v.get("code")) for o in options):
        yield Issue("error", "value", MESSAGES["units"](), at)
    for which, key in (("minimum", "minValue"), ("maximum", "maxValue")):
        for lim in [*_ext(qi, key), *_ext(qi, key.replace("Value", "Quantity"))]:
            if not isinstance(lim, dict):
                continue
            a, b = _base(v), _base(lim)
            if a is None or b is None or a[0] != b[0]:
                yield Issue("error", "value", MESSAGES[f"units-compare-{which}"](), at)
            elif (which == "minimum" and a[1] < b[1]) or (which == "maximum" and a[1] > b[1]):
                yield Issue("error", "value", MESSAGES["min" if which == "minimum" else "max"](
                    limit=f"{lim.get('value')} {lim.get('code')}"), at)


def _base(q: dict) -> tuple[str, float] | None:
    """(dimension, value in the base unit) of a UCUM quantity this module can compare; None otherwise."""
    value, code = q.get("value"), q.get("code")
    if q.get("system") != "http://unitsofmeasure.org" or not isinstance(value, (int, float)) or code not in _UNITS:
        return None
    dim, factor = _UNITS[str(code)]
    return dim, value * factor


def _enabled(qi: dict, answers: dict[str, list[dict]]) -> bool:
    conds = [c for c in _listed(qi.get("enableWhen")) if isinstance(c, dict)]
    if not conds:
        return True
    results = [_condition(c, answers.get(str(c.get("question")), [])) for c in conds]
    return all(results) if qi.get("enableBehavior") == "all" else any(results)


def _condition(c: dict, given: list[dict]) -> bool:
    op = c.get("operator")
    want = next(((k, v) for k, v in c.items() if k.startswith("answer")), None)
    if want is None:
        return True  # malformed: never disable an item on a condition that cannot be read
    key, target = want
    if op == "exists":
        return bool(given) == bool(target)
    vals = [v for a in given if (got := _value(a)) is not None and got[0] == "value" + key[6:] for v in [got[1]]]
    if key == "answerCoding":
        hit = [isinstance(v, dict) and (v.get("system"), v.get("code")) == (target.get("system"), target.get("code"))
               for v in vals]
        return any(hit) if op == "=" else (not any(hit)) if op == "!=" else False
    if op == "=":
        return any(v == target for v in vals)
    if op == "!=":
        return (bool(vals) and all(v != target for v in vals)) or not vals
    cmp = {">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}.get(
        str(op))
    return cmp is not None and any(_comparable(v, target) and cmp(v, target) for v in vals)
