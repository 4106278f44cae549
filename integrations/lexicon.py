"""Loading the blameless check's word lists, shipped as data beside the domain."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from domain.blameless import Lexicon


@cache
def load_lexicon(language: str = "en") -> Lexicon:
    path = resources.files("domain") / "lexicon" / f"{language}.toml"
    if not path.is_file():
        raise ValueError(f"no blameless word list for language {language!r}")
    return Lexicon.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
