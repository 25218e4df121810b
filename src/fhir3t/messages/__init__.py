"""Every human sentence fhir3t says, as message ids with parameters rendered in the reader's language
(core.py: declaring and building messages; render.py: rendering; reasons.py: a criterion's reason)."""
from __future__ import annotations

from fhir3t.messages.core import REGISTRY, Many, Message, Msg, Plural, Text, many
from fhir3t.messages.reasons import Clause, Reason, clause, join_reasons, reason, reason_text
from fhir3t.messages.render import render

__all__ = ["REGISTRY", "Clause", "Many", "Message", "Msg", "Plural", "Reason", "Text", "clause", "join_reasons",
           "many", "reason", "reason_text", "render"]
