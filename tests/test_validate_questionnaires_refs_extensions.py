"""QuestionnaireResponse against its Questionnaire, references inside a Bundle checked against their target,
extension rules (modifierExtension, relative URLs, bindings of core extensions), and the package's own
extensions defined (its value sets validate without a warning)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fhir3t.cli import main
from fhir3t.validate import Options, load_context, validate_issues, validate_resource

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
Q_URL = "http://example.org/Questionnaire/q1"

QUESTIONNAIRE = {
    "resourceType": "Questionnaire", "url": Q_URL, "status": "active",
    "item": [
        {"linkId": "intro", "type": "display", "text": "Please answer"},
        {"linkId": "smoker", "type": "boolean", "text": "Smoker?", "required": True},
        {"linkId": "packs", "type": "integer", "text": "Packs a day",
         "enableWhen": [{"question": "smoker", "operator": "=", "answerBoolean": True}],
         "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 1},
                       {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10}]},
        {"linkId": "colour", "type": "choice", "repeats": True, "answerOption": [
            {"valueCoding": {"system": "http://example.org/c", "code": "red"}},
            {"valueCoding": {"system": "http://example.org/c", "code": "none"},
             "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive",
                            "valueBoolean": True}]},
            {"valueCoding": {"system": "http://example.org/c", "code": "blue"}}]},
        {"linkId": "email", "type": "string", "maxLength": 20,
         "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/regex", "valueString": "[^@ ]+@[^@ ]+"}]},
    ],
}
GOOD = {"resourceType": "QuestionnaireResponse", "questionnaire": Q_URL, "status": "completed", "item": [
    {"linkId": "smoker", "answer": [{"valueBoolean": True}]},
    {"linkId": "packs", "answer": [{"valueInteger": 2}]},
    {"linkId": "colour", "answer": [{"valueCoding": {"system": "http://example.org/c", "code": "red"}},
                                    {"valueCoding": {"system": "http://example.org/c", "code": "blue"}}]},
    {"linkId": "email", "answer": [{"valueString": "a@b.cn"}]},
]}


def _qr_errors(qr: dict) -> set[tuple[str, str]]:
    issues = validate_resource(qr, Options(context=(QUESTIONNAIRE,)))
    return {(i.expression or "", i.diagnostics.split(" (")[0]) for i in issues if i.is_error}


def test_a_response_that_follows_its_questionnaire_passes() -> None:
    assert _qr_errors(GOOD) == set()


BREAKS = [
    ("unknown linkId", lambda qr: qr["item"].append({"linkId": "nope", "answer": [{"valueString": "x"}]}),
     "QuestionnaireResponse.item[4]", "linkId 'nope' not found"),
    ("answer of another type", lambda qr: qr["item"][1].update(answer=[{"valueString": "two"}]),
     "QuestionnaireResponse.item[1].answer[0]", "answer value must be of the type integer, not string"),
    ("two answers to a non-repeating item", lambda qr: qr["item"][1]["answer"].append({"valueInteger": 3}),
     "QuestionnaireResponse.item[1]", "only one answer is allowed"),
    ("required item unanswered", lambda qr: qr["item"].pop(0),
     "QuestionnaireResponse", "no answer found for required item 'smoker'"),
    ("answer to an item enableWhen disables", lambda qr: qr["item"][0].update(answer=[{"valueBoolean": False}]),
     "QuestionnaireResponse.item[1]", "item 'packs' has an answer, though enableWhen disables it"),
    ("answer outside the options", lambda qr: qr["item"][2]["answer"].append(
        {"valueCoding": {"system": "http://example.org/c", "code": "green"}}),
     "QuestionnaireResponse.item[2].answer[2]", "the answer is not among the item's answer options"),
    ("exclusive option with another", lambda qr: qr["item"][2]["answer"].append(
        {"valueCoding": {"system": "http://example.org/c", "code": "none"}}),
     "QuestionnaireResponse.item[2].answer[2]", "an exclusive answer option is selected together with other answers"),
    ("over maxValue", lambda qr: qr["item"][1].update(answer=[{"valueInteger": 11}]),
     "QuestionnaireResponse.item[1].answer[0]", "the answer is greater than the allowed maximum"),
    ("regex", lambda qr: qr["item"][3].update(answer=[{"valueString": "not an address"}]),
     "QuestionnaireResponse.item[3].answer[0]", "the answer does not match the required format"),
    ("display item with an answer", lambda qr: qr["item"].append({"linkId": "intro", "answer": [{"valueString": "x"}]}),
     "QuestionnaireResponse.item[4]", "items of type display cannot have answers"),
]


@pytest.mark.parametrize(("what", "change", "where", "message"), BREAKS, ids=[b[0] for b in BREAKS])
def test_a_response_breaking_its_questionnaire_is_an_error(what, change, where, message) -> None:
    qr = copy.deepcopy(GOOD)
    change(qr)
    got = _qr_errors(qr)
    assert any(w == where and m.startswith(message) for w, m in got), got


def test_the_questionnaire_is_found_in_the_bundle_or_with_supporting(tmp_path, capsys) -> None:
    bad = copy.deepcopy(GOOD)
    bad["item"][1]["answer"] = [{"valueString": "two"}]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:0b6b6f4e-5d7a-4d7e-9f5a-1c2b3d4e5f61", "resource": QUESTIONNAIRE},
        {"fullUrl": "urn:uuid:0b6b6f4e-5d7a-4d7e-9f5a-1c2b3d4e5f62", "resource": bad}]}
    assert any("must be of the type integer" in i.diagnostics for i in validate_resource(bundle))
    qr, q = tmp_path / "qr.json", tmp_path / "q.json"
    qr.write_text(json.dumps(bad))
    q.write_text(json.dumps(QUESTIONNAIRE))
    # without the Questionnaire: nothing to check against, said once
    issues, _ = validate_issues([qr])
    assert not [i for i in issues if i.is_error]
    assert any(i.code == "not-found" and Q_URL in i.diagnostics for i in issues)
    assert main(["validate", str(qr), "--supporting", str(q)]) == 1
    assert "must be of the type integer" in capsys.readouterr().out
    context, problems = load_context([q])
    assert context == (QUESTIONNAIRE,) and problems == []


def test_fhir3ts_own_checklist_response_is_checked_against_the_shipped_questionnaire() -> None:
    q = json.loads((PROFILES / "Questionnaire-3t-screening-checklist.json").read_text())
    first = next(i for i in q["item"] if i.get("type") not in ("display", "group"))
    qr = {"resourceType": "QuestionnaireResponse", "questionnaire": q["url"], "status": "in-progress",
          "item": [{"linkId": first["linkId"], "answer": [{"valueAttachment": {"title": "x"}}]}]}
    assert any("must be of the type" in i.diagnostics for i in validate_resource(qr) if i.is_error)


def test_display_items_need_a_link_id_too() -> None:
    q = {"resourceType": "Questionnaire", "status": "active", "item": [{"type": "display", "text": "hello"}]}
    assert [(i.severity, i.expression) for i in validate_resource(q) if "linkId" in (i.expression or "")] == [
        ("error", "Questionnaire.item[0].linkId")]


# --- references inside a transaction ---------------------------------------------------------------------

PATIENT_URN = "urn:uuid:0b6b6f4e-5d7a-4d7e-9f5a-1c2b3d4e5f70"
PRACTITIONER_URN = "urn:uuid:0b6b6f4e-5d7a-4d7e-9f5a-1c2b3d4e5f71"


def _transaction(subject: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": PATIENT_URN, "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": PRACTITIONER_URN, "resource": {"resourceType": "Practitioner"},
         "request": {"method": "POST", "url": "Practitioner"}},
        {"fullUrl": "urn:uuid:0b6b6f4e-5d7a-4d7e-9f5a-1c2b3d4e5f72",
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": subject},
         "request": {"method": "POST", "url": "Observation"}}]}


def test_a_urn_uuid_reference_to_a_resource_of_the_right_type_passes() -> None:
    assert [str(i) for i in validate_resource(_transaction({"reference": PATIENT_URN})) if i.is_error] == []
    typed = {"reference": PATIENT_URN, "type": "Patient"}
    assert [str(i) for i in validate_resource(_transaction(typed)) if i.is_error] == []


def test_a_urn_uuid_reference_to_a_resource_of_a_wrong_type_is_an_error() -> None:
    issues = [i for i in validate_resource(_transaction({"reference": PRACTITIONER_URN})) if i.is_error]
    assert [(i.expression, i.code) for i in issues] == [("Bundle.entry[2].resource.subject.reference", "structure")]
    assert "resolves to a Practitioner" in issues[0].diagnostics


def test_reference_type_disagreeing_with_its_target_is_an_error() -> None:
    issues = [i for i in validate_resource(_transaction({"reference": PATIENT_URN, "type": "Group"})) if i.is_error]
    assert [(i.expression, i.code) for i in issues] == [("Bundle.entry[2].resource.subject.type", "value")]


# --- extensions ------------------------------------------------------------------------------------------

DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def _errors(res: dict) -> list[tuple[str, str]]:
    return [(i.expression or "", i.diagnostics) for i in validate_resource(res) if i.is_error]


def test_an_unknown_modifier_extension_is_an_error_and_an_unknown_extension_is_not() -> None:
    pat = {"resourceType": "Patient", "extension": [{"url": "http://hospital.example/x", "valueString": "y"}]}
    assert _errors(pat) == []
    pat["modifierExtension"] = [{"url": "http://hospital.example/m", "valueBoolean": True}]
    assert [w for w, _ in _errors(pat)] == ["Patient.modifierExtension[0]"]


def test_an_ordinary_extension_used_as_a_modifier_and_the_reverse_are_errors() -> None:
    pat = {"resourceType": "Patient", "modifierExtension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": {"city": "Hangzhou"}}]}
    assert any("is not a modifier extension" in m for _, m in _errors(pat))
    order = {"resourceType": "NutritionOrder", "status": "active", "intent": "order",
             "patient": {"reference": "Patient/p"}, "dateTime": "2026-01-01",
             "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/request-doNotPerform", "valueBoolean": True}]}
    assert [(w, "is a modifier extension" in m) for w, m in _errors(order)] == [("NutritionOrder.extension[0]", True)]
    order["modifierExtension"] = order.pop("extension")
    assert _errors(order) == []


def test_relative_extension_urls_only_inside_complex_extensions() -> None:
    pat = {"resourceType": "Patient", "extension": [{"url": "species", "valueString": "dog"}]}
    assert [w for w, _ in _errors(pat)] == ["Patient.extension[0].url"]
    nested = {"resourceType": "Patient", "extension": [{"url": "http://hospital.example/c", "extension": [
        {"url": "species", "valueString": "dog"}]}]}
    assert _errors(nested) == []


def test_data_absent_reason_code_is_bound_to_its_value_set() -> None:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "_status": {"extension": [{"url": DAR, "valueCode": "asked-unknown"}]}}
    assert _errors(obs) == []
    obs["_status"]["extension"][0]["valueCode"] = "forgot"
    assert [w for w, _ in _errors(obs)] == ["Observation.status.extension[0].valueCode"]


def test_the_package_defines_the_extensions_its_value_sets_use(capsys) -> None:
    """Issue 19 item 4: match-name, code-provenance and half-life have StructureDefinitions, so the value sets
    validate with no warning about them (there were 295)."""
    names = {json.loads(p.read_text())["url"].rsplit("/", 1)[-1] for p in PROFILES.glob("StructureDefinition-*.json")}
    assert {"match-name", "code-provenance", "half-life"} <= names
    assert main(["validate", str(PROFILES / "valuesets"), "--format", "json"]) == 0
    oo = json.loads(capsys.readouterr().out)
    assert [i for i in oo["issue"] if i["severity"] != "information"] == []


def _element_paths(node: object, path: tuple = ()) -> list[tuple]:
    """Paths of every element (object member or list item) in a JSON tree."""
    out: list[tuple] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += [(*path, k), *_element_paths(v, (*path, k))]
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += [(*path, i), *_element_paths(v, (*path, i))]
    return out


def _put(tree: dict, path: tuple, value: object) -> dict:
    out = copy.deepcopy(tree)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize("wrong", [5, "x", {"linkId": "smoker"}, [1], None])
def test_an_element_of_any_other_shape_in_a_questionnaire_or_its_response_is_reported_never_raised(wrong) -> None:
    """Every element of the Questionnaire and of the response, in turn, given as a number, a string, an object, a
    list or null: the validator answers (the schema's error, when the shape is wrong) and never stops with a
    TypeError (an `item` of 5, a `linkId` that is an object did)."""
    for path in _element_paths(QUESTIONNAIRE):
        q = _put(QUESTIONNAIRE, path, wrong)
        assert all(i.diagnostics for i in validate_resource(GOOD, Options(context=(q,)))), path
        validate_resource(q, Options())
    for path in _element_paths(GOOD):
        validate_resource(_put(GOOD, path, wrong), Options(context=(QUESTIONNAIRE,)))
    for path in [("item",), ("item", 1, "answer"), ("item", 2, "answer", 0, "valueCoding")]:  # a shape R4 forbids
        assert any(i.is_error for i in validate_resource(_put(GOOD, path, 5), Options(context=(QUESTIONNAIRE,)))), path
