"""Loading the blameless check's word lists, shipped as data beside the domain, and deriving
the first-name list from its dataset."""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import re
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path

from domain.blameless import Lexicon

# The first-name list: names ranked among the 2,000 most common first names of at least
# one country in names-dataset (Philippe Remy's, v3, Apache-2.0: 730,000 names from 105
# countries). The whole dataset takes 900 MB and 4 s to load, so the list is derived from
# it once (`make first-names`) and shipped, about 105,000 names; a test derives it again
# from the installed dataset and compares.
NAMES_RANK = 2000
_NAME = re.compile(r"^[^\W\d_]{2,}(?:-[^\W\d_]{2,})?$")


@cache
def load_lexicon(language: str = "en") -> Lexicon:
    folder = resources.files("domain") / "lexicon"
    path = folder / f"{language}.toml"
    if not path.is_file():
        raise ValueError(f"no blameless word list for language {language!r}")
    lexicon = Lexicon.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    names = folder / f"first_names.{language}.txt"
    if names.is_file():
        words = names.read_text(encoding="utf-8").split()
        lexicon = lexicon.model_copy(update={"first_names": frozenset(w.lower() for w in words)})
    return lexicon


def derive_first_names(rank: int = NAMES_RANK) -> list[str]:
    """From the installed names-dataset (a development dependency): every first name of one
    word (or two joined by a hyphen) ranked within `rank` in some country, sorted."""
    spec = importlib.util.find_spec("names_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("names-dataset is not installed (pip install -e '.[dev]')")
    data = Path(next(iter(spec.submodule_search_locations))) / "v3" / "first_names.pkl.gz"
    with gzip.open(data) as packed:
        names = pickle.load(packed)  # noqa: S301 - the dataset's own file, from PyPI
    return sorted(
        {
            name
            for name, facts in names.items()
            if facts.get("rank") and min(facts["rank"].values()) <= rank and _NAME.match(name)
        }
    )


if __name__ == "__main__":  # make first-names
    target = Path(__file__).parent.parent / "domain" / "lexicon" / "first_names.en.txt"
    listed = derive_first_names()
    target.write_text("\n".join(listed) + "\n", encoding="utf-8")
    print(f"{target}: {len(listed)} names")
