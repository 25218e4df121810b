"""HTTP to FHIR servers, shared by sources (pull, export) and sinks (push): session, retries, auth."""
