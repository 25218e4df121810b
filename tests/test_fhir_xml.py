"""FHIR XML: the samples written as XML by an independent encoder (fhir.resources' R4B models through
lxml, not fhir3t) screen, follow up and validate exactly as their JSON; hostile XML is refused with one
sentence and nothing expanded or read."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import SAMPLES
from fhir3t import fhirxml
from fhir3t.cli import main
from fhir3t.errors import Problems
from fhir3t.sources.files import read_json_file
from fhir3t.validate import validate_issues

pytest.importorskip("lxml", reason="the XML twins are written by fhir.resources, which needs lxml (test extra)")

from fhir.resources.R4B import get_fhir_model_class


def _twin(src: Path, folder: Path) -> Path:
    from lxml import etree

    data = json.loads(src.read_text(encoding="utf-8"))
    model = get_fhir_model_class(data["resourceType"]).model_validate(data)
    root = etree.fromstring(model.model_dump_xml())
    _integral_decimals(root, data)
    out = folder / (src.stem + ".xml")
    out.write_bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    return out


def _integral_decimals(el, obj) -> None:
    """fhir.resources writes the decimal 20 as "20.0" (a precision the JSON did not have): write it back as
    the JSON wrote it, so the twin carries the same values."""
    seen: dict[str, int] = {}
    for c in el:
        if not isinstance(c.tag, str):
            continue
        name = etree_local(c.tag)
        i = seen[name] = seen.get(name, -1) + 1
        val = obj.get(name) if isinstance(obj, dict) else None
        if isinstance(val, list):
            val = val[i] if i < len(val) else None
        if isinstance(val, int) and not isinstance(val, bool) and c.get("value", "").endswith(".0"):
            c.set("value", str(val))
        elif isinstance(val, dict):
            if "resourceType" in val and len(c) and etree_local(c[0].tag) == val["resourceType"]:
                _integral_decimals(c[0], val)
            else:
                _integral_decimals(c, val)


def etree_local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """sample folder -> (the JSON folder, a folder of its XML twins)."""
    out = {}
    for name in ("screening", "safety"):
        folder = tmp_path_factory.mktemp(f"xml-{name}")
        for f in sorted((SAMPLES / name).glob("*.json")):
            _twin(f, folder)
        out[name] = (SAMPLES / name, folder)
    return out


def _normalise(text: str, *folders: Path) -> str:
    for f in folders:
        text = text.replace(str(f), "<in>")
    return re.sub(r"\.(json|xml)\b", ".<ext>", text)


def test_xml_twins_read_as_the_same_resources(twins) -> None:
    """Each twin reads back to the resource its JSON holds (decimals compared as numbers)."""
    for json_dir, xml_dir in twins.values():
        for f in sorted(json_dir.glob("*.json")):
            problems = Problems()
            got = read_json_file(xml_dir / (f.stem + ".xml"), problems)
            assert problems.items == [], [str(p) for p in problems.items]
            assert got == json.loads(f.read_text(encoding="utf-8")), f.name


def test_xml_twins_screen_exactly_as_the_json(twins, capsys) -> None:
    json_dir, xml_dir = twins["screening"]
    concept_map = str(SAMPLES / "conceptmaps" / "hospital-local.json")
    outs = []
    for folder in (json_dir, xml_dir):
        code = main(["screen", str(folder), "--as-of", "2026-11-16", "--concept-map", concept_map, "--format", "json"])
        outs.append((code, _normalise(capsys.readouterr().out, folder)))
    assert outs[0][0] == outs[1][0]
    assert json.loads(outs[0][1]) == json.loads(outs[1][1])
    assert len(json.loads(outs[1][1])["results"] if isinstance(json.loads(outs[1][1]), dict) else json.loads(outs[1][1])) >= 20


def test_xml_twins_follow_up_exactly_as_the_json(twins, capsys) -> None:
    json_dir, xml_dir = twins["safety"]
    outs = []
    for folder in (json_dir, xml_dir):
        code = main(["safety", str(folder), "--as-of", "2026-11-16", "--format", "json"])
        outs.append((code, _normalise(capsys.readouterr().out, folder)))
    assert outs[0] == outs[1]
    assert "Neutrophil count decreased" in outs[1][1]


def test_xml_twins_validate_exactly_as_the_json(twins) -> None:
    for json_dir, xml_dir in twins.values():
        for f in sorted(json_dir.glob("*.json")):
            a, ta = validate_issues([f])
            b, tb = validate_issues([xml_dir / (f.stem + ".xml")])
            strip = [(i.severity, i.code, i.expression, i.diagnostics) for i in a]
            assert strip == [(i.severity, i.code, i.expression, i.diagnostics) for i in b], f.name
            assert (ta.resources, ta.entries) == (tb.resources, tb.entries)


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><name><family value="&lol4;"/></name></Patient>"""


def _external(target: Path) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY xxe SYSTEM "file://{target}">]>'
            '<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><name><family value="&xxe;"/></name></Patient>').encode()


@pytest.mark.parametrize("kind", ["bomb", "external"])
def test_entity_bomb_and_external_entity_are_refused_with_one_sentence(kind, tmp_path, capsys) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    f = tmp_path / "p.xml"
    f.write_bytes(BOMB if kind == "bomb" else _external(secret))
    with pytest.raises(fhirxml.XmlRefused) as exc:
        fhirxml.parse(f.read_bytes())
    sentence = str(exc.value)
    assert sentence.startswith("refused: ") and sentence.count(". ") == 0 and "\n" not in sentence
    # validate: one fatal issue, exit 1, nothing of the entity's content anywhere
    assert main(["validate", str(f)]) == 1
    out = capsys.readouterr()
    assert sentence in out.out + out.err
    assert "TOP-SECRET" not in out.out + out.err and "lollol" not in out.out + out.err
    # screen / safety: the file is skipped with the same sentence as a located problem
    problems = Problems()
    assert read_json_file(f, problems) is None
    assert [p.message for p in problems.items] == [f"{sentence}; file skipped"]


def test_xml_problems_are_located_and_values_kept(tmp_path) -> None:
    f = tmp_path / "o.xml"
    f.write_bytes(b'<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code>'
                  b'<valueQuantity><value value="1,5"/></valueQuantity><foo xmlns="urn:other"/>'
                  b'<issued value="2020-01-01T00:00:00Z"/><issued value="2020-01-02T00:00:00Z"/></Observation>')
    problems = Problems()
    got = read_json_file(f, problems)
    assert isinstance(got, dict)
    assert got["valueQuantity"]["value"] == "1,5"  # kept as written: a reader sees a wrong value, not none
    assert got["issued"] == ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"]
    assert sorted(p.where for p in problems.items) == [
        f"{f}#Observation.foo", f"{f}#Observation.issued", f"{f}#Observation.valueQuantity.value"]
    issues, _ = validate_issues([f])
    assert {i.expression for i in issues if i.is_error} >= {
        "Observation.foo", "Observation.issued", "Observation.valueQuantity.value"}


def test_a_screened_xml_lab_with_an_unreadable_value_is_not_a_value(tmp_path, capsys) -> None:
    """The one promise through XML: a DLCO written '8O' (letter O) is not read as a number: I4 is
    unknown and the patient a candidate (the JSON twin, 85, is ineligible), the problem located."""
    x = _twin(SAMPLES / "screening" / "08-ineligible-dlco-85.json", tmp_path)
    text = x.read_text(encoding="utf-8")
    assert text.count('<value value="85') == 1
    x.write_text(text.replace('<value value="85', '<value value="8O'), encoding="utf-8")
    main(["screen", str(x), "--as-of", "2026-11-16", "--format", "json"])
    out = capsys.readouterr()
    [result] = json.loads(out.out)
    assert result["status"] == "candidate"
    assert [c["result"] for c in result["criteria"] if c["id"] == "I4-dlco"] == ["unknown"]
    assert "valueQuantity.value: the value is not a valid decimal" in out.err and "8O" not in out.err


def test_utf8_bom_is_accepted(tmp_path) -> None:
    f = tmp_path / "p.json"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps({"resourceType": "Patient", "id": "p1"}).encode())
    issues, tally = validate_issues([f])
    assert not [i for i in issues if i.is_error] and tally.resources == 1
    problems = Problems()
    assert read_json_file(f, problems) == {"resourceType": "Patient", "id": "p1"}
    nd = tmp_path / "p.ndjson"
    nd.write_bytes(b"\xef\xbb\xbf" + json.dumps({"resourceType": "Patient", "id": "p1"}).encode() + b"\n")
    issues, tally = validate_issues([nd])
    assert not [i for i in issues if i.is_error] and tally.resources == 1
