"""fhir3t as a service: recruitment inside the clinician's workflow, and screening when data arrives.

- `hooks`: the CDS Hooks 2.0 service (discovery with prefetch templates derived from the criteria,
  `patient-view` and `order-select` calls, feedback), free of any web framework; `cards`: the card;
  `orders`: which orders bring the trial up, and what starting them would do; `prefetch`: the
  templates and reading a request's prefetch; `fetch`: what was not prefetched, from `fhirServer`,
  within the time budget; `jwt_auth`: the EHR's signed JWT; `store`: cards shown, feedback and the
  how-often rule on disk (SQLite).
- `watch`: FHIR Subscriptions (rest-hook) or `_lastUpdated` polling, screening and pushing
  ResearchSubjects with the no-regression rule.
- `app`: the Starlette ASGI app over both; `runner`: uvicorn, graceful shutdown, logs.

Starlette and uvicorn come with the default install (the `service` extra names them too); only `app` and
`runner` import them, and fhir3t.cli.extras says which extra to install if they are missing.
"""
