"""Every human sentence fhir3t says, as message ids with parameters rendered in the reader's language
(core.py: declaring and building messages; render.py: rendering; reasons.py: a criterion's reason)."""
from __future__ import annotations

from fhir3t.messages.core import REGISTRY, Many, Message, Msg, Plural, Text, many, table
from fhir3t.messages.lang import EN, LANGUAGES, ZH
from fhir3t.messages.reasons import Clause, Reason, clause, join_reasons, reason, reason_text
from fhir3t.messages.render import Later, Words, later, render

__all__ = [
           "EN",
           "LANGUAGES",
           "REGISTRY",
           "ZH",
           "Clause",
           "Later",
           "Many",
           "Message",
           "Msg",
           "Plural",
           "Reason",
           "Text",
           "Words",
           "clause",
           "join_reasons",
           "later",
           "many",
           "reason",
           "reason_text",
           "render",
           "table",
]
