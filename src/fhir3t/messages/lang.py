"""Which language a person reads: `--lang`, else the config's `[site] language`, else the environment
(`LC_ALL`, `LC_MESSAGES`, `LANG`, as POSIX orders them), else English.

fhir3t speaks `en` and `zh-CN` (BCP 47 tags, as FHIR's `language` codes and HTML's `lang` write them).
A tag given on purpose (`--lang`, the config) must be one of them; a locale from the environment
(`zh_CN.UTF-8`, `C.UTF-8`, `de_DE`) is read leniently: Chinese is zh-CN, anything else English.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

EN, ZH = "en", "zh-CN"
LANGUAGES = (EN, ZH)
DEFAULT = EN
#: the environment variables a locale is read from, first set wins (POSIX: LC_ALL overrides LC_MESSAGES, LANG)
ENV_VARS = ("LC_ALL", "LC_MESSAGES", "LANG")


def normalize(tag: str | None) -> str | None:
    """A supported language for a tag or locale name (`zh`, `zh_CN.UTF-8`, `zh-Hans-CN`, `en_US`, `C`),
    or None when it names another language."""
    if not tag:
        return None
    t = tag.split(".", 1)[0].split("@", 1)[0].strip().replace("_", "-").lower()
    if t in ("c", "posix") or t == "en" or t.startswith("en-"):
        return EN
    if t == "zh" or t.startswith("zh-"):
        return ZH
    return None


def from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The language the environment's locale names (None: unset, or a language fhir3t does not speak)."""
    env = os.environ if env is None else env
    for name in ENV_VARS:
        value = env.get(name)
        if value:  # the first one set decides, as in setlocale(3): LC_ALL=C means C even if LANG says zh_CN
            return normalize(value)
    return None


def choose(given: str | None = None, configured: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The language of a run: given (--lang), configured ([site] language), the environment, else English.
    `given` and `configured` are expected to be checked already (see `check`)."""
    for tag in (given, configured):
        lang = normalize(tag)
        if lang is not None:
            return lang
    return from_env(env) or DEFAULT


def from_accept_language(header: str | None) -> str | None:
    """The language an HTTP Accept-Language header prefers among fhir3t's (`zh-CN,zh;q=0.9,en;q=0.8` -> zh-CN),
    or None when it names none of them (a header is at most a few hundred bytes: longer ones are not read)."""
    if not header or len(header) > 512:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        lang = normalize(tag.strip()) if tag.strip() not in ("", "*") else None
        if lang is not None and q > 0:
            ranked.append((-q, i, lang))
    return min(ranked)[2] if ranked else None


def check(tag: str) -> str:
    """A language given on purpose, as fhir3t spells it; ValueError when fhir3t does not speak it."""
    lang = normalize(tag)
    if lang is None:
        raise ValueError(f"'{tag}' is not one of {', '.join(LANGUAGES)}")
    return lang


def gettext_code(lang: str) -> str:
    """zh-CN -> zh_CN (the folder of its catalog)."""
    return lang.replace("-", "_")


__all__ = ["DEFAULT", "EN", "ENV_VARS", "LANGUAGES", "ZH", "check", "choose", "from_accept_language", "from_env",
           "gettext_code", "normalize"]
