"""The message catalogs (issue 23): every declared message is in the catalog and translated to zh-CN, the catalog
compiles on first use where no build compiled it, the language is chosen as the README says, and no sentence a
person reads bypasses the catalog."""
from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import fhir3t
from conftest import ROOT
from fhir3t.messages import REGISTRY, Message, Msg, Plural, render
from fhir3t.messages import catalog as catalogs
from fhir3t.messages import lang as languages
from fhir3t.messages.extract import declarations

SRC = ROOT / "src" / "fhir3t"
PO = catalogs.po_path("zh_CN")


def _import_everything() -> None:
    """Every module of fhir3t, so every declaration is in the registry (the CLI's help included)."""
    for m in pkgutil.walk_packages(fhir3t.__path__, "fhir3t."):
        if m.name.endswith("__main__"):
            continue
        importlib.import_module(m.name)
    from fhir3t.cli import build_parser

    build_parser()  # help texts declared where the options are


@pytest.fixture(scope="module")
def registry() -> dict[str, Message | Plural]:
    _import_everything()
    return {k: v for k, v in REGISTRY.items() if v.en}  # an empty template (a table's corner) is not translated


@pytest.fixture(scope="module")
def po():
    with PO.open("rb") as fh:
        return read_po(fh, locale="zh_CN")


def _extracted() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for _line, _kind, texts, _comments in declarations(path.read_text(encoding="utf-8")):
            out[texts[0]] = texts[1:]
    return out


# ---- the catalog holds every message ------------------------------------------------------------------------------
def test_every_declared_message_is_found_by_the_extractor(registry):
    """A message declared with a computed id or template would never reach the catalog: the extractor reads the
    syntax, so everything the registry holds must be literal."""
    extracted = _extracted()
    missing = sorted(set(registry) - set(extracted))
    assert missing == [], f"declared but not extractable (write the id and template as literals): {missing[:10]}"
    for mid, decl in registry.items():
        texts = extracted[mid]
        assert texts[0] == decl.en, mid
        if isinstance(decl, Plural):
            assert texts[1] == decl.en_plural, mid


def test_every_message_has_a_zh_cn_translation(registry, po):
    by_id = {m.context: m for m in po if m.id}
    untranslated = []
    for mid, decl in registry.items():
        m = by_id.get(mid)
        strings = (m.string if isinstance(m.string, tuple) else (m.string,)) if m is not None else ("",)
        english = m.id if m is not None and not isinstance(m.id, tuple) else (m.id[0] if m is not None else None)
        if m is None or not all(strings) or m.fuzzy or english != decl.en:
            untranslated.append(mid)
    assert untranslated == [], (f"{len(untranslated)} message(s) without a current zh-CN translation, e.g. "
                                f"{untranslated[:8]}: run python tools/i18n.py update, translate them in {PO.relative_to(ROOT)}")


def test_the_catalog_holds_no_message_that_is_no_longer_declared(registry, po):
    stale = sorted(m.context for m in po if m.id and m.context not in registry)
    assert stale == [], f"run python tools/i18n.py update: {stale[:10]}"


def test_the_template_file_is_what_the_extractor_finds():
    with catalogs.POT.open("rb") as fh:
        pot = {m.context: (m.id if isinstance(m.id, tuple) else (m.id,)) for m in read_po(fh) if m.id}
    assert pot == _extracted(), "run python tools/i18n.py update"


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_translations_keep_the_placeholders_markup_and_table_columns(po):
    for m in po:
        if not m.id:
            continue
        english = " ".join(m.id) if isinstance(m.id, tuple) else m.id
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        for s in m.string if isinstance(m.string, tuple) else (m.string,):
            got = _fields(s)  # also fails on a brace the translator left unbalanced
            assert got <= _fields(english), (m.context, got - _fields(english))
            assert _fields(ids[0]) - {"n"} <= got, (m.context, "placeholders left out")
            assert s.count("|") == ids[0].count("|"), (m.context, "a table header's columns are '|'-separated")
            assert s.count("**") == ids[0].count("**"), (m.context, "markdown bold kept")


# ---- compiled at build time, or on first use ----------------------------------------------------------------------
def test_a_checkout_compiles_the_catalog_on_first_use_into_a_cache_keyed_by_the_po(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    locale = tmp_path / "locale"
    po = catalogs.po_path("zh_CN", locale)
    po.parent.mkdir(parents=True)
    po.write_bytes(PO.read_bytes())
    monkeypatch.setattr(catalogs, "LOCALE_DIR", locale)
    t = catalogs.load("zh_CN")
    assert t.pgettext("status.eligible", "eligible") == "符合条件"
    cached = list((tmp_path / "cache").rglob("fhir3t.mo"))
    assert len(cached) == 1
    # an edited .po is compiled again (a new folder): a stale catalog is never read
    entry = 'msgctxt "status.eligible"\nmsgid "eligible"\nmsgstr "符合条件"'
    assert entry in PO.read_text(encoding="utf-8")
    po.write_text(PO.read_text(encoding="utf-8").replace(entry, entry.replace("符合条件", "合格")), encoding="utf-8")
    assert catalogs.load("zh_CN").pgettext("status.eligible", "eligible") == "合格"
    assert len(list((tmp_path / "cache").rglob("fhir3t.mo"))) == 2


def test_a_packaged_catalog_is_used_only_while_it_matches_its_po(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    locale = tmp_path / "locale"
    catalogs.po_path("zh_CN", locale).parent.mkdir(parents=True)
    catalogs.po_path("zh_CN", locale).write_bytes(PO.read_bytes())
    catalogs.compile_tree(locale, locale)  # what setup.py's build step writes into the wheel
    monkeypatch.setattr(catalogs, "LOCALE_DIR", locale)
    assert catalogs.load("zh_CN").pgettext("status.eligible", "eligible") == "符合条件"
    assert not (tmp_path / "cache").exists()  # the packaged .mo was read
    catalogs.po_path("zh_CN", locale).unlink()  # a wheel may carry the .mo alone
    assert catalogs.load("zh_CN").pgettext("status.ineligible", "ineligible") == "不符合条件"


def test_plural_forms_follow_the_language():
    from fhir3t.formats.summary import PATIENTS

    assert [render(PATIENTS(n)) for n in (1, 2)] == ["1 patient", "2 patients"]
    assert [render(PATIENTS(n), "zh-CN") for n in (1, 2)] == ["共1名患者", "共2名患者"]  # nplurals=1


# ---- the language ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "configured", "env", "expected"), [
    ("zh-CN", "en", {"LANG": "en_US.UTF-8"}, "zh-CN"),                 # --lang wins
    (None, "zh-CN", {"LANG": "en_US.UTF-8"}, "zh-CN"),                 # then [site] language
    (None, None, {"LANG": "zh_CN.UTF-8"}, "zh-CN"),                    # then the environment
    (None, None, {"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),        # LC_ALL overrides LANG
    (None, None, {"LC_MESSAGES": "zh_TW.UTF-8", "LANG": "en"}, "zh-CN"),
    (None, None, {"LANG": "de_DE.UTF-8"}, "en"),                       # a language fhir3t does not speak
    (None, None, {}, "en"),                                            # default
])
def test_the_language_is_the_option_then_the_config_then_the_environment(given, configured, env, expected):
    assert languages.choose(given, configured, env) == expected


def test_accept_language_picks_the_preferred_language_fhir3t_speaks():
    assert languages.from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert languages.from_accept_language("en-GB, zh;q=0.5") == "en"
    assert languages.from_accept_language("fr, zh;q=0.3") == "zh-CN"
    assert languages.from_accept_language("fr, de") is None
    assert languages.from_accept_language("zh;q=0, en;q=0.1") == "en"


def _cli(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "fhir3t", *argv], capture_output=True, text=True, env=full,
                          cwd=cwd, timeout=300)


def test_lang_option_config_and_environment_reach_the_command_line(tmp_path):
    (tmp_path / "fhir3t.toml").write_text('[site]\nlanguage = "zh-CN"\n')
    by_env = _cli("screen", "--as-of", "2026-13-01", env={"LC_ALL": "zh_CN.UTF-8"})
    assert by_env.returncode == 2 and "应为 YYYY-MM-DD 格式的日期" in by_env.stderr
    by_config = _cli("--config", str(tmp_path / "fhir3t.toml"), "screen", "--as-of", "2026-13-01")
    assert "应为 YYYY-MM-DD 格式的日期" in by_config.stderr
    by_option = _cli("--config", str(tmp_path / "fhir3t.toml"), "--lang", "en", "screen", "--as-of", "2026-13-01")
    assert "expected a date YYYY-MM-DD" in by_option.stderr
    bad = _cli("--lang", "fr", "screen", "x")
    assert bad.returncode == 2 and "'fr' is not a language fhir3t speaks: give one of en, zh-CN" in bad.stderr


def test_json_logs_stay_english_whatever_the_language():
    run = _cli("--lang", "zh-CN", "--log-format", "json", "screen", "--no-progress", "--format", "json",
               str(ROOT / "samples" / "screening"))
    assert run.returncode in (0, 3), run.stderr[-2000:]  # 3: the local codes of sample 22 have no ConceptMap here
    assert not re.search(r"[\u4e00-\u9fff]", run.stderr), run.stderr[:500]  # the log
    assert re.search(r"[\u4e00-\u9fff]", run.stdout)  # reason_localized: what a person reads


# ---- nothing a person reads bypasses the catalog ------------------------------------------------------------------
#: the modules whose strings reach people: the CLI, the output formats, the cards, the report, check-server's lines
SCOPE = ["cli", "formats", "report", "service/cards.py", "service/orders.py", "pipeline/servercheck",
         # the enrolment workflow (issue 22): its refusals, timeline and log words, the coordinator's page and sign-in
         "enrolment", "state", "pipeline/enrolment.py", "service/coordinator.py", "service/coordinator_page.py",
         "service/signin.py",
         # the input problems and errors of reading files, a server and the patient store (issues 20 and 28)
         "sources/grouping.py", "sources/files.py", "sources/rest.py", "sources/statestore.py",
         "pipeline/screening.py", "pipeline/incremental.py",
         # errors a CLI user sees when a server call, a push or an export fails, or a config, key, profile,
         # terminology or criteria file does not load
         "transport", "sinks", "sources", "config.py", "secretfiles.py", "smallfiles.py", "terminology.py",
         "profiles.py", "study.py", "criteria/load.py",
         # the pipeline's errors and problems, the notes of emitting FHIR, the safety analysis' problems and errors,
         # the Spark entry point's problems, notes and help
         "pipeline", "emit", "safety", "spark.py",
         # the CDS service: its HTTP error bodies are machine text (HTTP_ERRORS, PrefetchError), its settings' and
         # --notify's refusals are the CLI's
         "service/app.py", "service/bodies.py", "service/failures.py", "service/prefetch.py", "service/settings.py",
         "service/notify.py", "service/store.py", "service/watch.py", "service/jwt_auth.py", "service/fetch.py",
         "service/hooks.py",
         # the validator: the OperationOutcome issue texts an integration engineer reads (details.text in the run's
         # language; diagnostics stays English) and the grouped report `fhir3t validate` prints
         "validate",
         # the rule kinds and the checks over a whole criteria definition: why a criteria file does not load, and
         # the words of a reason
         "criteria/kinds", "criteria/check.py",
         # the sentence of a document that does not have its schema's shape (a config file's error on the command
         # line; the service's HTTP 400 bodies carry its English)
         "shapecheck.py"]
#: module-level constants that are machine text, not sentences (stylesheets, scripts, font stacks)
MACHINE_CONSTANTS = {"CSS", "SCRIPT", "FONTS", "CSP",
                     "EVENTS",  # the log events' catalogue: English, for the engineers who alert on them
                     "LOG_TEXT",  # a module's log record texts: English (what engineers grep)
                     "HTTP_ERRORS"}  # the service's HTTP error bodies: JSON for the calling program (an EHR)
#: calls whose strings are for machines or logs (never shown in the reader's language, by design)
MACHINE_CALLS = {
    "debug", "info", "warning", "exception", "critical",  # a logger's records: English (what engineers grep)
    "event", "failed",  # RunLog: the run's log records (the failure line is rendered before it gets there)
    "HookError",  # a CDS Hooks call's HTTP error body: JSON for the EHR's programs
    "ValueError", "TypeError", "KeyError", "AssertionError", "RuntimeError", "NotImplementedError",  # a bug
    "ArgumentTypeError", "ArithmeticError",
    "compile", "match", "fullmatch", "search", "sub",  # patterns matching argparse's or fhir3t's own English
    "Gate",  # why no card: a field of the cds-call log record
    "_log", "_refuse",  # the coordinator page's request log records (the page says the message passed beside them)
    "OrderError", "ResponseError", "HttpStatusError",  # an HTTP error body, a transport error's technical text
    "PrefetchError",  # a CDS call's prefetch refused: the HTTP 400 body (JSON for the EHR)
    "DeadlineExceeded",  # the service's fetch ran out of time: a reason in a cds-call log record
}
#: keys of JSON objects built as literals whose values document the JSON for programs (the JSON report's
#: `definition`s): machine output, in English whatever the language
MACHINE_KEYS = {"definition", "method", "rule", "exposure", "note", "ci_method"}
#: (file, text that starts the literal) for machine strings that are not caught above, each with its reason
ALLOWED = {
    ("formats/jsonout.py", "the run did not complete"): "the JSON error marker: machine output",
    ("report/endpoints.py", "first day S(t) <= 0.5"): "the JSON report's method field: machine output",
    ("report/sections.py", "SOC not mapped"): "the JSON report's organ class of an unmapped term (the page says it in words)",
    ("report/html.py", "SOC not mapped"): "compared with the JSON report's value above",
    ("report/flow.py", "reason not given"): "the JSON screening flow's title of a reason not given (a code; the page "
                                            "says it with report.svg flow.reason.none)",
    ("cli/parser.py", "expected one argument"): "argparse's own English, recognised to be said again in a message",
    ("pipeline/servercheck/write.py", "fhir3t check-server write test"): "data: the test ResearchStudy's title",
    ("cli/report.py", "safety data"): "a key of the JSON report's header hashes",
    ("service/coordinator.py", "(no route)"): "the route field of a request's log record",
    ("service/app.py", "(no route)"): "the route field of a request's log record",
    ("service/app.py", "internal error"): "an HTTP error body: JSON for the calling program",
    ("service/jwt_auth.py", "larger than"): "the detail of an HTTP 401 body (HTTP_ERRORS)",
    ("service/jwt_auth.py", "exp or iat not a number"): "the detail of an HTTP 401 body (HTTP_ERRORS)",
    **{("service/store.py", start): "why no card: the `why` field of a cds-call log record"
       for start in ("accepted", "dismissed", "shown")},
    ("service/watch.py", "fhir3t: screen patients for"): "FHIR data: a Subscription's reason",
    ("shapecheck.py", "the body"): "where a request body's error is (dotted('')): part of the service's HTTP 400 "
                                   "body for the EHR (HTTP_ERRORS)",
    # the service's fetch: what failed, in the `not_fetched` field and warning of a cds-call log record
    **{("service/fetch.py", start): "a query's key or failure in a cds-call log record (never shown to a person)"
       for start in ("(next pages)", "prefetch", "no answer within the time budget", "the server answered",
                     "no answer", "cannot reach", "request budget", "not valid JSON", "instead of a Bundle")},
    # the CDS Hooks discovery document and a call's answer: JSON for the EHR, and the call's log record
    **{("service/hooks.py", start): "the CDS Hooks discovery document (JSON for the EHR's programs)"
       for start in ("Prefetch the listed queries", ": trial screening", "Screens the patient", ": before starting",
                     "When a drug the")},
    **{("service/hooks.py", start): "a cds-call log record's field (`why`, `fhir_server`)"
       for start in ("no selected order is a drug", "not allowed", "data not fetched within", "no record of the")},
    **{("service/hooks.py", start): "the HTTP 412 body of a call without its prefetch (JSON for the EHR)"
       for start in ("this fhirServer is not one", "no fhirServer was given", "prefetch")},
    ("service/cards.py", "Laboratory procedure"): "SNOMED CT's display of the ServiceRequest category code (FHIR data)",
    # where a problem is: Problems locate by text, beside a file path or URL (a known gap: not translated)
    ("sources/files.py", "at line"): "a problem's location in a JSON file (line and column)",
    ("sources/rest.py", "batch entry"): "a problem's location in a server's batch answer",
    ("sources/rest.py", "(Patient/"): "a problem's location: the patients of a request",
    # the transport's protocol data and technical text (a ResponseError's or HttpStatusError's, classified above)
    ("transport/auth.py", "system/*.read"): "the OAuth scopes a SMART token is asked for: protocol data",
    ("transport/http.py", "(the server's diagnostics"): "part of outcome_text, the OperationOutcome summary carried in "
                                                        "a transport error's technical text (beside the HTTP phrase)",
    ("transport/http.py", "a JSON object that is not"): "what an answer held, in a ResponseError's technical text",
    ("transport/http.py", "an empty answer"): "what an answer held, in a ResponseError's technical text",
    **{("transport/http.py", hint): "the network library's own English, matched and passed on as the technical reason"
       for hint in ("Connection refused", "Name or service not known", "timed out", "Max retries exceeded",
                    "certificate verify failed", "No address associated", "Connection reset",
                    "Temporary failure in name resolution")},
    # codes and FHIR data: the same whatever the reader's language
    ("pipeline/codes.py", "unknown system"): "a verdict of `fhir3t codes`: a code (its CSV column and table show it "
                                             "as written)",
    ("pipeline/codes.py", "named like a criterion"): "a verdict of `fhir3t codes`: a code, as above",
    **{("pipeline/conceptmap_draft.py", start): "FHIR data: the draft ConceptMap's title, description and target "
                                                "comments (a resource file, stable whatever the language)"
       for start in ("Draft written by fhir3t codes", "proposed: the display", "; the local code extends",
                     "Local codes to map")},
    ("emit/adverse_event.py", "Results in death"): "FHIR data: the HL7 adverse-event-seriousness code's display",
    ("emit/adverse_event.py", "Requires or prolongs"): "FHIR data: the HL7 adverse-event-seriousness code's display",
    ("emit/adverse_event.py", "adverse-event detection for"): "FHIR data: the Provenance's reason text",
    ("emit/screening.py", "screening for"): "FHIR data: the Provenance's reason text",
    ("emit/enrolment.py", "trial recruitment contact"): "FHIR data: a Communication's category text",
    # a Finding's values: fields of the JSON safety output and report (grade_source, seriousness, term), as written
    ("safety/clinical.py", "CTCAE grade extension"): "a Finding's grade_source: a JSON value (grading.by_source keys)",
    ("safety/engine.py", "CTCAE grade extension"): "compared with the grade_source above",
    ("safety/engine.py", "lab grading"): "a Finding's grade_source: a JSON value",
    ("safety/engine.py", "(recorded grade"): "part of a Finding's grade_source: a JSON value",
    ("safety/engine.py", "death from this AE"): "a Finding's grade_source: a JSON value",
    ("safety/investigator.py", "not recorded"): "the seriousness code of an AE whose record gives none (a JSON value; "
                                               "the report says it in words)",
    ("safety/investigator.py", "AdverseEvent without an event term"): "a Finding's term when the record names none: "
                                                                      "a JSON value (ae_term), shown as written",
}
#: English prose: two words of letters in a row (after markup, placeholders and code-like tokens are removed)
_PROSE = re.compile(r"\b[A-Za-z][a-z]{1,}(?:'[a-z]+)?\s+[a-z]{2,}\b")
_MARKUP = re.compile(r"<[^>]*>?|^[^<]*>|&[a-z]+;|[\w:-]+=\"[^\"]*\"?|\{[^{}]*\}|https?://\S+|--?[a-z][\w-]*|\$\w+|`[^`]*`"
                     r"|\[[a-z ]+\]")


def _prose(text: str) -> bool:
    return bool(_PROSE.search(_MARKUP.sub(" ", text)))


def _literal_text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " {} ".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return None


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def bypasses(path: Path) -> list[tuple[int, str]]:
    """English sentences in `path` outside message declarations, docstrings and machine output."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ok: set[int] = set()  # ids of literal nodes that are fine where they are
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and _literal_text(first.value) is not None:
                ok.add(id(first.value))
        elif isinstance(node, ast.Call) and (_call_name(node) in {"Message", "Plural", "table"} | MACHINE_CALLS):
            ok.update(id(n) for n in ast.walk(node))
        elif isinstance(node, ast.Assign | ast.AnnAssign) and any(
                isinstance(t, ast.Name) and t.id in MACHINE_CONSTANTS
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            ok.update(id(n) for n in ast.walk(node))
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value in MACHINE_KEYS:
                    ok.update(id(n) for n in ast.walk(v))
        elif isinstance(node, ast.JoinedStr):  # judged as a whole, below
            ok.update(id(v) for v in node.values)
    rel = str(path.relative_to(SRC))
    found = []
    for node in ast.walk(tree):
        if id(node) in ok:
            continue
        text = _literal_text(node) if isinstance(node, (ast.Constant, ast.JoinedStr)) else None
        if text is None or not _prose(text):
            continue
        if any(rel == f and text.lstrip().startswith(start) for f, start in ALLOWED):
            continue
        found.append((getattr(node, "lineno", 0), text[:80]))
    # a JoinedStr's parts are Constants too: report each sentence once
    return sorted(set(found))


def _scope() -> list[Path]:
    out: list[Path] = []
    for s in SCOPE:
        p = SRC / s
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def test_no_sentence_a_person_reads_bypasses_the_catalog():
    found = {str(p.relative_to(SRC)): b for p in _scope() if (b := bypasses(p))}
    assert found == {}, "English text outside a Message / Plural / table declaration (declare it, or if it is " \
                        "machine output add it to ALLOWED with the reason):\n" + "\n".join(
                            f"  {f}:{line}: {text!r}" for f, items in found.items() for line, text in items)


def test_the_bypass_check_catches_a_sentence_and_leaves_declarations_and_machine_text_alone(tmp_path):
    sample = SRC / "cli" / "_i18n_probe.py"
    sample.write_text('"""A docstring is fine."""\nimport sys\n'
                      'from fhir3t.messages import Message\n'
                      'OK = Message("probe.ok", "this is declared")\n'
                      'CSS = "font: Noto Sans CJK"\n'
                      'def f(log):\n'
                      '    log.info("an English log record")\n'
                      '    print(f"no patients found in {sys.argv}", file=sys.stderr)\n'
                      '    out = "<td class=\\"x\\">{n}</td>"\n', encoding="utf-8")
    try:
        found = bypasses(sample)
        assert [line for line, _ in found] == [8] and found[0][1].startswith("no patients found in")
    finally:
        sample.unlink()


def test_every_status_and_criterion_title_has_its_chinese():
    from fhir3t.enrolment import WORDS
    from fhir3t.pipeline import Definition

    for status, m in WORDS.items():
        assert re.search(r"[\u4e00-\u9fff]", render(m(), "zh-CN")), status
    for c in Definition.load().criteria.criteria:
        assert re.search(r"[\u4e00-\u9fff]", c.title_text.get("zh-CN")), c.id
        assert re.search(r"[\u4e00-\u9fff]", render(c.description_msg, "zh-CN")), c.id


def test_msg_is_rendered_english_for_json_and_chinese_for_people():
    m = Msg("status.eligible")
    assert render(m) == "eligible" and render(m, "zh-CN") == "符合条件"


@pytest.mark.parametrize("width", [20, 40, 76])
def test_chinese_text_wraps_between_characters_by_display_cells_and_never_before_a_closing_mark(width):
    from fhir3t.messages.cells import cells, wrap

    text = ("2026-10-19..2026-11-16内无丙肝抗体（抗-HCV）结果：筛选时开具丙肝抗体（抗-HCV）（LOINC 13955-0；本院项目："
            "“丙肝抗体”，代码 HCVAB），或记录一条可读取的结果")
    lines = wrap(text, width)
    assert all(cells(line) <= width for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # nothing lost, only breaks added
    assert len(lines) > 1
    for line in lines:
        assert line[0] not in "，。；：）”" and line[-1] not in "（“"
    for whole in ("13955-0", "HCVAB", "抗-HCV"):  # a code and a date range stay whole where the line holds them
        assert any(whole in line for line in lines)
    if width >= 22:
        assert any("2026-10-19..2026-11-16" in line for line in lines)


def test_english_text_wraps_only_at_spaces_as_before():
    from rich.console import Console
    from rich.text import Text

    from fhir3t.messages.cells import wrap

    text = ("no IGRA result in 2026-10-19..2026-11-16 (the latest, on 2026-10-18, is outside it): order LOINC "
            "71773-6 at screening; coded RxNorm 2047241 'Olumiant 2 MG Oral Tablet', not in the value set ≥ 18")
    console = Console(width=80)
    for width in (30, 50, 76):
        assert wrap(text, width) == [line.plain.rstrip() for line in Text(text).wrap(console, width, overflow="fold")]
