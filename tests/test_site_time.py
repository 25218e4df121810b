"""The site's time (issue 23): the default as-of date is today in `[site] timezone`, the nightly script files
its run under that date, times people read are local with their offset; evaluation stays on the calendar
day each record writes. Clocks are injected: a run at 18:30 UTC is 02:30 the next day in Hangzhou."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from conftest import ROOT, SAMPLES
from fhir3t.cli import main
from fhir3t.dates import local_time, system_zone, zone, zone_name
from fhir3t.pipeline.run import SAMPLE_AS_OF, choose_dates, today_in

HANGZHOU = zone("Asia/Shanghai")
#: 18:30 UTC on 16 November: 02:30 on 17 November in Hangzhou
EVENING_UTC = datetime(2026, 11, 16, 18, 30, tzinfo=UTC)


def untagged(tmp_path: Path) -> Path:
    """A sample patient without the sample-as-of tag, so today decides the as-of date."""
    bundle = orjson.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_bytes())
    tags = (bundle.get("meta") or {}).get("tag") or []
    bundle.setdefault("meta", {})["tag"] = [t for t in tags if t.get("system") != SAMPLE_AS_OF]
    out = tmp_path / "input"
    out.mkdir()
    (out / "p01.json").write_bytes(orjson.dumps(bundle))
    return out


@pytest.mark.parametrize(("zone_name_", "expected"), [
    ("Asia/Shanghai", date(2026, 11, 17)), ("UTC", date(2026, 11, 16)), ("America/New_York", date(2026, 11, 16))])
def test_today_is_the_sites_date(zone_name_, expected):
    assert today_in(zone(zone_name_), lambda: EVENING_UTC) == expected
    # a minute before midnight in Hangzhou it is still the 16th there
    assert today_in(HANGZHOU, lambda: datetime(2026, 11, 16, 15, 59, tzinfo=UTC)) == date(2026, 11, 16)
    assert today_in(HANGZHOU, lambda: datetime(2026, 11, 16, 16, 0, tzinfo=UTC)) == date(2026, 11, 17)


def test_a_given_or_tagged_as_of_wins_over_the_clock(tmp_path):
    assert choose_dates("2026-11-01", tz=HANGZHOU, clock=lambda: EVENING_UTC).as_of == date(2026, 11, 1)
    tagged = choose_dates(paths=[SAMPLES / "screening"], tz=HANGZHOU, clock=lambda: EVENING_UTC)
    assert tagged.as_of == date(2026, 11, 16) and tagged.as_of_from == "samples"


def _screen(tmp_path: Path, *argv: str, clock=EVENING_UTC) -> dict:
    out = tmp_path / "out.json"
    code = main(["--no-config", *argv, "screen", str(untagged(tmp_path)), "--format", "json", "--out", str(out),
                 "--no-progress"], clock=lambda: clock)
    assert code == 0
    return json.loads(out.read_text(encoding="utf-8"))[0]


def test_the_cli_screens_as_of_the_sites_date_at_1830_utc(tmp_path, capsys):
    assert _screen(tmp_path, "--timezone", "Asia/Shanghai")["as_of"] == "2026-11-17"
    assert "as-of 2026-11-17 (today, Asia/Shanghai)" in capsys.readouterr().err


def test_the_config_file_sets_the_site_zone_and_the_option_wins(tmp_path, capsys):
    cfg = tmp_path / "fhir3t.toml"
    cfg.write_text('[site]\ntimezone = "Asia/Shanghai"\n', encoding="utf-8")
    out = tmp_path / "a.json"
    assert main(["--config", str(cfg), "screen", str(untagged(tmp_path)), "--format", "json", "--out", str(out),
                 "--no-progress"], clock=lambda: EVENING_UTC) == 0
    assert json.loads(out.read_text(encoding="utf-8"))[0]["as_of"] == "2026-11-17"
    (tmp_path / "input").rename(tmp_path / "input-1")
    assert main(["--config", str(cfg), "--timezone", "UTC", "screen", str(untagged(tmp_path)), "--format", "json",
                 "--out", str(out), "--no-progress"], clock=lambda: EVENING_UTC) == 0
    assert json.loads(out.read_text(encoding="utf-8"))[0]["as_of"] == "2026-11-16"


def test_evaluation_stays_on_the_calendar_day_the_record_writes(tmp_path):
    """The zone moves only the default as-of date: an observation written 2026-11-17T01:00+08:00 counts on the
    17th whatever the site's zone (the spec reads the day as written)."""
    from fhir3t.dates import parse_date

    assert parse_date("2026-11-17T01:00:00+08:00").lo == date(2026, 11, 17)
    a = _screen(tmp_path, "--timezone", "Asia/Shanghai")
    (tmp_path / "input").rename(tmp_path / "input-1")
    b = _screen(tmp_path, "--timezone", "Pacific/Kiritimati", clock=datetime(2026, 11, 16, 22, 0, tzinfo=UTC))
    assert a["as_of"] == b["as_of"] == "2026-11-17"  # same day at the site: the same results, read the same way
    assert [c["result"] for c in a["criteria"]] == [c["result"] for c in b["criteria"]]


def test_times_people_read_are_local_with_their_offset():
    assert local_time("2026-11-16T18:30:00+00:00", HANGZHOU) == "2026-11-17 02:30:00 +08:00"
    assert local_time("2026-11-16T18:30:00Z", zone("UTC")) == "2026-11-16 18:30:00 +00:00"
    assert local_time(datetime(2026, 11, 16, 18, 30), HANGZHOU) == "2026-11-17 02:30:00 +08:00"  # naive = UTC
    assert zone_name(HANGZHOU) == "Asia/Shanghai" and zone_name(timezone(timedelta(hours=8))).startswith("+08")


def test_the_worklist_says_when_it_was_written_in_the_sites_time(tmp_path):
    out = tmp_path / "w.html"
    assert main(["--no-config", "--timezone", "Asia/Shanghai", "--lang", "zh-CN", "screen", str(untagged(tmp_path)),
                 "--format", "html", "--out", str(out), "--no-progress"], clock=lambda: EVENING_UTC) == 0
    page = out.read_text(encoding="utf-8")
    assert "2026-11-17 02:30:00 +08:00" in page and "今天，Asia/Shanghai" in page


def test_the_system_zone_is_read_from_tz(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    assert zone_name(system_zone()) == "Asia/Shanghai"


def test_a_bad_site_zone_is_one_sentence(tmp_path, capsys):
    cfg = tmp_path / "fhir3t.toml"
    cfg.write_text('[site]\ntimezone = "Asia/Shanghia"\n', encoding="utf-8")
    assert main(["--config", str(cfg), "today"]) == 4
    assert "'timezone' must be an IANA time zone such as Asia/Shanghai" in capsys.readouterr().err
    assert main(["--no-config", "--timezone", "Mars/Olympus", "today"]) == 2


# ---- the nightly script ----------------------------------------------------------------------------------------------
CLOCKED = '''import sys
from datetime import datetime
from fhir3t.cli import main
now = datetime.fromisoformat(sys.argv[1])
sys.exit(main(sys.argv[2:], clock=lambda: now))
'''


def test_a_nightly_run_at_1830_utc_screens_and_files_as_of_the_hangzhou_date(tmp_path):
    """deploy/fhir3t-nightly.sh with [site] timezone = "Asia/Shanghai" and the clock at 18:30 UTC on 16 November:
    the run screens as of 17 November and is published under OUT/2026-11-17."""
    clocked = tmp_path / "clocked.py"
    clocked.write_text(CLOCKED, encoding="utf-8")
    fhir3t = tmp_path / "fhir3t"
    fhir3t.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{clocked}" "{EVENING_UTC.isoformat()}" "$@"\n')
    fhir3t.chmod(0o755)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[site]\ntimezone = "Asia/Shanghai"\nlanguage = "zh-CN"\n', encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "FHIR3T_OUT": str(out), "FHIR3T_BIN": str(fhir3t), "FHIR3T_CONFIG": str(cfg),
           "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run(["sh", str(ROOT / "deploy" / "fhir3t-nightly.sh"), str(untagged(tmp_path))], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    day = out / "2026-11-17"
    assert (out / "latest").resolve() == day.resolve()
    assert json.loads((day / "screening.json").read_text(encoding="utf-8"))[0]["as_of"] == "2026-11-17"
    page = (day / "worklist.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in page and "筛选日" in page  # the site's language from the same config
