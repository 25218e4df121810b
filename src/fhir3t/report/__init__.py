"""Endpoint report: Kaplan–Meier survival from D1, AE incidence, as JSON and as an offline HTML page."""
from __future__ import annotations

from fhir3t.report.endpoints import HORIZON_DAYS, endpoints, survival_fit
from fhir3t.report.html import render_html
from fhir3t.report.km import KaplanMeier, kaplan_meier

__all__ = ["HORIZON_DAYS", "KaplanMeier", "endpoints", "kaplan_meier", "render_html", "survival_fit"]
