"""fhir3t's version (written into User-Agent headers, Provenance and reports)."""
__version__ = "0.2.0"
