"""When two findings say the same thing: deterministic text similarity over word stems.

A text becomes its *terms*: its words, lower-cased, without the words every sentence has
("the", "was", "because"...), each cut to its Snowball stem, so that "deploys",
"deployed" and "deployment" are one term. Two texts are similar when their term sets
overlap enough (the Dice coefficient: twice the shared terms over both sizes) and share at
least MIN_SHARED terms. The same texts always give the same answer; nothing is learned.

The record keeps each factor's and cause's terms (record/schema.py), computed when the
post-mortem is written, so a lookup compares sets and never stems the archive again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import snowballstemmer

SIMILAR = 0.5  # Dice coefficient at or above which two texts are similar
MIN_SHARED = 2  # and at least this many terms in common (one word is a coincidence)
MAX_TERMS = 64  # a text's terms kept: the first ones, sorted (a bound on the stored column)

# A word is at most 40 letters (a longer run is read as several): a term stays short.
_WORD = re.compile(r"[^\W\d_]{2,40}(?:['\u2019][^\W\d_]{1,40})?", re.UNICODE)

# Words that say nothing of the system: English function words, and the words every
# post-mortem uses ("incident", "issue", "caused"...), which would make any two similar.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers him his how i if in into is it
    its itself just me more most my no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there
    these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours without within upon via per
    across among etc get got getting one two three many much may might must shall incident
    incidents issue issues problem problems cause caused causes causing outage outages
    happened happen happens led lead leading result resulted
    """.split()  # noqa: SIM905
)


@lru_cache(maxsize=1)
def _stemmer() -> snowballstemmer.stemmer:
    return snowballstemmer.stemmer("english")


def terms(text: str) -> frozenset[str]:
    """The text's terms: stems of its words that say something."""
    words = [w.lower().replace("\u2019", "'") for w in _WORD.findall(text)]
    words = [w.split("'")[0] for w in words]  # "service's" -> "service"
    kept = [w for w in words if len(w) > 1 and w not in STOPWORDS]
    # The first MAX_TERMS distinct stems in the order written (a long text's later words
    # are not preferred over its first ones by the alphabet).
    stems = dict.fromkeys(s for s in _stemmer().stemWords(kept) if s and s not in STOPWORDS)
    return frozenset(list(stems)[:MAX_TERMS])


def encode(found: Iterable[str]) -> str:
    """Terms as the record stores them: sorted, space-separated."""
    return " ".join(sorted(found))


def decode(stored: str | None) -> frozenset[str]:
    return frozenset(stored.split()) if stored else frozenset()


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Dice coefficient of two term sets; 0 when either is empty."""
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def similar(a: frozenset[str], b: frozenset[str]) -> bool:
    return score(a, b) > 0


def score(a: frozenset[str], b: frozenset[str]) -> float:
    """The similarity of two similar term sets; 0 when they are not (one pass: the lookup
    calls it for every finding of the look-back)."""
    shared = len(a & b)
    if shared < MIN_SHARED:
        return 0.0
    dice = 2 * shared / (len(a) + len(b))
    return dice if dice >= SIMILAR else 0.0
