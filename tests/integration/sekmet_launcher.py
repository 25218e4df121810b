"""Start sekmet-fhir 0.1.1 for fhir3t's integration tests (runs in sekmet's own virtualenv).

Usage: python sekmet_launcher.py PORT DATA_DIR [--smart-jwks FILE --client-id ID [--client-secret S]]

Version 0.1.1 defines no search parameters for ResearchStudy, ResearchSubject, AdverseEvent and
QuestionnaireResponse, so conditional creates on them fail and they are left out of a patient's
compartment ($everything, Patient/$export). The standard R4 parameters are added to its table
before the app is built. Binds 127.0.0.1 only; the workflow simulator is off.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXTRA_PARAMS = {
    "ResearchStudy": """
        identifier:token:identifier
        status:token:status
        title:string:title
        condition:token:condition
        category:token:category
        focus:token:focus
        keyword:token:keyword
        date:date:period
        partof:reference:partOf
        protocol:reference:protocol
        sponsor:reference:sponsor
        principalinvestigator:reference:principalInvestigator
        site:reference:site
    """,
    "ResearchSubject": """
        identifier:token:identifier
        status:token:status
        study:reference:study
        individual:reference:individual
        patient:reference:individual:Patient
        date:date:period
    """,
    "AdverseEvent": """
        actuality:token:actuality
        category:token:category
        event:token:event
        subject:reference:subject
        date:date:date
        recorder:reference:recorder
        resultingcondition:reference:resultingCondition
        location:reference:location
        seriousness:token:seriousness
        severity:token:severity
        study:reference:study
        substance:reference:suspectEntity.instance
    """,
    "QuestionnaireResponse": """
        identifier:token:identifier
        status:token:status
        subject:reference:subject
        patient:reference:subject:Patient
        author:reference:author
        authored:date:authored
        encounter:reference:encounter
        questionnaire:uri:questionnaire
        based-on:reference:basedOn
        part-of:reference:partOf
        source:reference:source
    """,
    "Provenance": """
        target:reference:target
        recorded:date:recorded
        agent:reference:agent.who
        entity:reference:entity.what
    """,
}


def patch_search_params() -> None:
    from sekmet.fhir import search_params as sp

    for rtype, block in EXTRA_PARAMS.items():
        have = {line.strip().split(":")[0] for line in sp._DEFS.get(rtype, "").strip().splitlines() if line.strip()}
        lines = [ln for ln in block.strip().splitlines() if ln.strip().split(":")[0] not in have]
        sp._DEFS[rtype] = sp._DEFS.get(rtype, "") + "\n" + "\n".join(lines) + "\n"
    # PARAMS is imported by name elsewhere: update the same dict in place
    sp.PARAMS.clear()
    sp.PARAMS.update(sp._parse())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("data_dir")
    ap.add_argument("--smart-jwks", help="public JWKS of the SMART client allowed to get tokens")
    ap.add_argument("--client-id", default="fhir3t-test")
    ap.add_argument("--client-secret")
    ap.add_argument("--token-lifetime", type=int, default=3600)
    args = ap.parse_args()

    patch_search_params()
    import uvicorn
    from sekmet.config import ServerAuth, Settings, SmartClient, set_settings
    from sekmet.main import create_app

    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    auth = ServerAuth()
    if args.smart_jwks:
        jwks = json.loads(Path(args.smart_jwks).read_text())
        auth = ServerAuth(types=["smart"], token_lifetime=args.token_lifetime, smart_clients=[
            SmartClient(client_id=args.client_id, jwks=jwks, client_secret=args.client_secret,
                        scopes="system/*.read system/*.write")])
    base = f"http://127.0.0.1:{args.port}/fhir"
    settings = Settings.model_validate({
        "base_url": base, "host": "127.0.0.1", "port": args.port, "data_dir": str(data),
        "db_path": str(data / "sekmet.db"), "own_private_key_path": str(data / "keys" / "sekmet_private.pem"),
        "log_inbound": False, "simulator": {"enabled": False, "delay_seconds": 0.2, "auto": []},
        "validation": {"inbound": "warn"},
    })
    settings.server_auth = auth
    set_settings(settings)
    app = create_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
