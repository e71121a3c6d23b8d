"""Text rules shared by every stage: how product text and attribute values become
comparable words, the form a value is stored in, and the form a title shows.

Three inflections, deliberately different, each named for its use:

* `singular_value`: the singular an attribute value is *stored* in ("casual shoes" ->
  "casual shoe"; "jeans" stays). It must be a real word a page can show, and it must never
  change for a value already stored (stored values make slugs), so it touches the last word
  only and leaves `INVARIANT_WORDS` alone. `normalize_value` applies it (to product types,
  materials and patterns) with case, punctuation and `VALUE_SYNONYMS`; `normalize_key` is
  the same for keys.
* `display_plural`: the plural a title *shows* ("casual shoe" -> "casual shoes", "jeans",
  "lipstick", "necklaces and chains"); `display_words` writes it in title case.
* `fold_word`: a word's folded (singular) form, used only for *matching* ("Shoes" and
  "shoe", "Scarves" and "scarf", "Kurtis" and "kurti" fold alike). Folding is applied to
  both sides of every comparison, so it need not be a dictionary singular: it only has to
  be consistent.

`INVARIANT_WORDS` is the one list of words with a single form for singular and plural that
the first two consult.

Matching:

* `text_words`: lower-case, folded words of a text, with "t-shirt"/"t shirt"/"tee" spellings
  joined into "tshirt" and possessives dropped ("Men's" -> "men").
* `PhraseIndex`: finds which known phrases (attribute values) a text mentions, longest phrase
  first, whole words only, and picks one per key: the *last* mention for the product type
  (English puts the head noun last: "Casual Shoes", "Puma Men Black Running Shoe") and the
  *first* for every other key (catalogs name a multi-colour product by its first colour).
  The offline teacher and the scoring-time evidence both use it, so a title means the same
  thing to both.
* `BrandPrefixes`: leading title words that are a brand's name, not a statement about the
  product ("Red Tape" shoes are brown or black), learned from the titles read together;
  `PhraseIndex.find` skips the mentions they hide.
* `values_match`: how a discovered value is compared with a catalog label in evaluation.
  "strict": the same folded words. "lenient" (product type only; other keys stay strict:
  "navy blue" is not "blue"): a coarser or finer name of the same thing counts: both name
  the same head noun (the last word) and the words of one are all words of the other (a
  discovered "shoe" for "Casual Shoes", "sandals" for "Sports Sandals"; not "shoe" for
  "Shoe Laces"). A catalog name "A and B" ("Perfume and Body Mist") is matched by either
  part. A word may differ from its counterpart by one letter added, dropped or swapped with
  its neighbour, after the first letter, when both have 5 letters or more (spelling
  variants: "duffle"/"duffel", "sharpner"/"sharpener"; never a changed letter: "shirt" is
  not "skirt"). Words are whole: "shirt" does not match "t-shirt", nor "ring" "earrings".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# The key whose value is a product's head noun (matched at the end of a title).
PRODUCT_TYPE_KEY = "product_type"

# -- stored values and titles: singular and plural ----------------------------------------

# Words and phrases with one form for singular and plural: `singular_value` never strips
# their "s", `display_plural` never adds one.
INVARIANT_WORDS = {
    # plural only, or catalog names that are plural already
    "jeans", "trousers", "shorts", "leggings", "jeggings", "tights", "pants", "track pants", "chinos",
    "joggers", "capris", "dungarees", "briefs", "boxers", "trunks", "socks", "innerwear vests",
    "sunglasses", "flip flops", "sandals", "heels", "flats", "gloves", "cufflinks", "suspenders",
    "earrings", "mufflers", "stoles", "scarves", "headphones", "accessories", "kurtas", "kurtis", "wallets",
    # uncountable, or a name a title does not pluralize
    "footwear", "eyewear", "nightwear", "swimwear", "shapewear", "loungewear", "sleepwear", "clothing",
    "jewellery", "deodorant", "lipstick", "nail polish", "mascara", "concealer", "sunscreen", "eyeshadow",
    "compact", "lip gloss", "lip liner", "lip care", "lip plumper", "hair colour", "toner", "makeup remover",
    "eye cream", "body lotion", "lehenga choli", "dupatta", "salwar", "churidar", "patiala",
    # a final "s" that is not a plural
    "canvas", "sports", "boys", "girls",
}
VALUE_SYNONYMS = {
    ("color", "gray"): "grey",
    ("color", "navy"): "navy blue",
    ("color", "off-white"): "off white",
    ("gender", "male"): "men",
    ("gender", "female"): "women",
    ("gender", "man"): "men",
    ("gender", "woman"): "women",
    ("product_type", "tshirt"): "t-shirt",
    ("product_type", "tee"): "t-shirt",
    ("product_type", "t shirt"): "t-shirt",
    ("season", "autumn"): "fall",
    ("color", "multicolor"): "multi",
    ("color", "multicolored"): "multi",
    ("color", "multi color"): "multi",
    ("pattern", "stripe"): "striped",
    ("pattern", "check"): "checked",
    ("pattern", "print"): "printed",
    ("neckline", "v-neck"): "v neck",
    ("sleeve", "full sleeves"): "full sleeve",
    ("sleeve", "half sleeves"): "half sleeve",
    ("sleeve", "short sleeves"): "short sleeve",
    ("sleeve", "long sleeves"): "long sleeve",
}
# Keys whose values are nouns stored in the singular.
SINGULAR_KEYS = (PRODUCT_TYPE_KEY, "material", "pattern")
# "X and Y" catalog phrases read as a category name ("Perfume and Body Mist") and keep their
# form in a title; a few want both nouns in the plural.
PLURAL_PHRASES = {"necklace and chain": "necklaces and chains", "tie and cufflink": "ties and cufflinks", "ties and cufflinks": "ties and cufflinks"}
# Display forms of single words (after pluralization); everything else is title-cased.
DISPLAY_FORMS = {"tshirt": "T-Shirt", "tshirts": "T-Shirts", "t-shirt": "T-Shirt", "t-shirts": "T-Shirts", "and": "and", "multi": "Multicolour", "of": "of", "with": "with"}


def normalize_key(key: str) -> str:
    """An attribute key as stored: lower case, runs of other characters as one "_"."""
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


def normalize_value(key: str, value: str) -> str:
    """An attribute value as stored: lower case, "_" and "/" as spaces, no punctuation but
    "&" and "-", synonyms resolved, and nouns of `SINGULAR_KEYS` in the singular."""
    text = value.lower().strip()
    text = re.sub(r"[_/]+", " ", text)
    text = re.sub(r"[^a-z0-9&\- ]+", "", text)
    text = re.sub(r"\s+", " ", text).strip(" -")
    text = VALUE_SYNONYMS.get((key, text), text)
    if key in SINGULAR_KEYS:
        text = singular_value(text)
    return VALUE_SYNONYMS.get((key, text), text)


def singular_value(phrase: str) -> str:
    """The singular a value is stored in: its last word's ("casual shoes" -> "casual shoe"),
    unless the phrase or that word is in `INVARIANT_WORDS` or has 3 letters or fewer."""
    if phrase in INVARIANT_WORDS:
        return phrase
    head, _, last = phrase.rpartition(" ")
    if last in INVARIANT_WORDS or len(last) <= 3:
        return phrase
    if last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith(("ches", "shes", "sses", "xes")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith(("ss", "us", "is")):
        last = last[:-1]
    return f"{head} {last}".strip()


def display_plural(noun: str) -> str:
    """The plural a title shows for a product-type phrase: its last word's, unless the
    phrase or that word is in `INVARIANT_WORDS`, is an "X and Y" category (`PLURAL_PHRASES`
    aside), ends in "wear" or is plural already ("sports sandals")."""
    if noun in PLURAL_PHRASES:
        return PLURAL_PHRASES[noun]
    if noun in INVARIANT_WORDS or " and " in noun:
        return noun
    head, _, last = noun.rpartition(" ")
    if last in INVARIANT_WORDS or last.endswith("wear"):
        return noun
    if last.endswith("s") and not last.endswith(("ss", "us")):
        return noun
    if last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    elif last.endswith(("ch", "sh", "ss", "x")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}".strip()


def display_words(text: str) -> str:
    """Title case per word and per hyphenated part ("t-shirts" -> "T-Shirts"), small words
    lower case ("Perfume and Body Mist")."""
    words = []
    for word in text.split(" "):
        if word in DISPLAY_FORMS:
            words.append(DISPLAY_FORMS[word])
        else:
            words.append("-".join(part[:1].upper() + part[1:] for part in word.split("-")))
    return " ".join(words)


# -- matching: folded words ---------------------------------------------------------------
_TSHIRT = re.compile(r"\b(?:t[\s-]?shirts?|tees?)\b")
_WORD = re.compile(r"[a-z0-9]+")
_POSSESSIVE = re.compile(r"['\u2019]s\b")


def fold_word(word: str) -> str:
    """Folded singular form of one lower-case word (see the module docstring)."""
    if len(word) <= 3 or word.endswith(("ss", "us")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("rves", "lves")):  # scarves, shelves; not sleeves
        return word[:-3] + "f"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def raw_words(text: str | None) -> list[str]:
    """Lower-case words (letters and digits) with t-shirt spellings joined, unfolded."""
    lowered = _TSHIRT.sub("tshirt", _POSSESSIVE.sub("", (text or "").lower()))
    return _WORD.findall(lowered)


def text_words(text: str | None) -> list[str]:
    """Folded words of a text: what every comparison of product text works on."""
    return [fold_word(w) for w in raw_words(text)]


def phrase_key(phrase: str) -> tuple[str, ...]:
    """The folded words of an attribute value: how it is looked up in text."""
    return tuple(text_words(phrase))


def is_wordlike(token: str) -> bool:
    """A real word rather than a size, code or unit: 3+ characters, no digit, a vowel
    ("mtp", "ml", "br", "ef" and "02" are not)."""
    return len(token) >= 3 and not any(ch.isdigit() for ch in token) and any(ch in "aeiouy" for ch in token)


def mention_position(key: str) -> str:
    """Which mention of a key a text means: the last for the product type (head noun), the
    first otherwise."""
    return "last" if key == PRODUCT_TYPE_KEY else "first"


MENTION_MEMO_SIZE = 200_000  # texts whose mentions a PhraseIndex remembers (a catalog's distinct titles)


@dataclass
class PhraseIndex:
    """Known phrases (key, folded words) -> value, searchable in texts.

    `add(key, phrase, value)` registers a surface phrase for a value (several phrases may
    name one value: the vocabulary's merged spellings). `find(text)` returns {key: value}
    with one value per key mentioned, chosen by `mention_position`."""

    _phrases: dict[str, dict[tuple[str, ...], str]] = field(default_factory=dict)
    _max_len: int = 1
    # Every key's phrases in one table, (folded words) -> [(key order, key, value)], so a text
    # is read with one lookup per position and length instead of one per key as well; and
    # the mentions of texts already read (catalog titles repeat: 31k distinct in 44k).
    _by_words: dict[tuple[str, ...], list[tuple[int, str, str]]] = field(default_factory=dict, repr=False)
    _memo: dict[tuple[str, ...], list[tuple[int, str, str]]] = field(default_factory=dict, repr=False)

    def add(self, key: str, phrase: str, value: str) -> None:
        words = phrase_key(phrase)
        if not words:
            return
        phrases = self._phrases.setdefault(key, {})
        if words in phrases:
            return
        phrases[words] = value
        self._max_len = max(self._max_len, len(words))
        order = list(self._phrases).index(key)
        self._by_words.setdefault(words, []).append((order, key, value))
        self._memo.clear()

    def keys(self) -> list[str]:
        return list(self._phrases)

    def __len__(self) -> int:
        return sum(len(p) for p in self._phrases.values())

    def mentions(self, words: Sequence[str]) -> list[tuple[int, str, str]]:
        """(position, key, value) of every mention in the folded `words`, longest phrase
        first at each position; a word belongs to one mention per key at most. Per key, the
        text is read left to right and a mention skips the words it covers; mentions come
        grouped by key (in the order keys were added), each key's in text order."""
        words = tuple(words)
        cached = self._memo.get(words)
        if cached is not None:
            return list(cached)
        found: list[tuple[int, int, str, str]] = []
        free_from: dict[str, int] = {}  # per key, the first word not inside one of its mentions
        for i in range(len(words)):
            matched_here: set[str] = set()
            for length in range(min(self._max_len, len(words) - i), 0, -1):
                for order, key, value in self._by_words.get(words[i : i + length], ()):
                    if key in matched_here or free_from.get(key, 0) > i:
                        continue
                    matched_here.add(key)
                    free_from[key] = i + length
                    found.append((order, i, key, value))
        result = [(i, key, value) for _, i, key, value in sorted(found)]
        if len(self._memo) >= MENTION_MEMO_SIZE:
            self._memo.clear()
        self._memo[words] = result
        return list(result)

    def find(self, text: str | None, keys: Iterable[str] | None = None, prose: bool = False, brands: "BrandPrefixes | None" = None) -> dict[str, str]:
        """One value per mentioned key (see `mention_position`). `prose` (a description,
        not a title): the first mention for every key, since prose names the product first
        ("A casual shirt in cotton; wear it with jeans"). `brands`: mentions inside a
        brand's name are not read."""
        wanted = set(keys) if keys is not None else None
        chosen: dict[str, tuple[int, str]] = {}
        words = text_words(text)
        for position, key, value in self.mentions(words):
            if wanted is not None and key not in wanted:
                continue
            if brands is not None and brands.hides(key, words, position):
                continue
            if key not in chosen or (not prose and mention_position(key) == "last" and position > chosen[key][0]):
                chosen[key] = (position, value)
        return {key: value for key, (_, value) in chosen.items()}


@dataclass(frozen=True)
class BrandPrefixes:
    """Title prefixes that name a brand rather than the product, per key.

    A mention among a title's first words (position < `max_position`) opens a candidate: the
    title's words up to and including the word after the mention ("red tape", "mr men
    little"). The candidate is a brand for that key when at least `min_titles` titles start
    with it and most of them (`min_other_share`) name a *different* value of the same key
    after it: "Red Tape Men Brown Formal Shoe", "Red Rose Women Blue Nightdress". A title
    starting with "Red Shirt" is not hidden: no other colour follows "red shirt" in most
    titles. Learned without labels from the titles read together (one shard, or the
    products being scored), so the teacher and the scoring-time evidence agree."""

    hidden: frozenset[tuple[str, tuple[str, ...]]] = frozenset()  # (key, prefix words)

    @classmethod
    def learn(cls, titles: Iterable[str | None], index: "PhraseIndex", min_titles: int = 8, min_other_share: float = 0.5, max_position: int = 2) -> "BrandPrefixes":
        starts: dict[tuple[str, tuple[str, ...]], int] = {}
        contradicted: dict[tuple[str, tuple[str, ...]], int] = {}
        for title in titles:
            words = text_words(title)
            mentions = index.mentions(words)
            for position, key, value in mentions:
                if position >= max_position:
                    continue
                candidate = (key, tuple(words[: position + 2]))
                starts[candidate] = starts.get(candidate, 0) + 1
                if any(later >= position + 2 and k == key and v != value for later, k, v in mentions):
                    contradicted[candidate] = contradicted.get(candidate, 0) + 1
        return cls(frozenset(c for c, n in starts.items() if n >= min_titles and contradicted.get(c, 0) / n >= min_other_share))

    def hides(self, key: str, words: Sequence[str], position: int) -> bool:
        """Whether the mention of `key` at `position` of `words` lies inside a brand prefix."""
        return any(k == key and position < len(prefix) and tuple(words[: len(prefix)]) == prefix for k, prefix in self.hidden)

    def __len__(self) -> int:
        return len(self.hidden)


def spelling_variant(a: str, b: str) -> bool:
    """One letter added, dropped, or swapped with its neighbour after the first letter, in
    words of 5+ letters."""
    if a == b:
        return True
    if min(len(a), len(b)) < 5 or abs(len(a) - len(b)) > 1 or a[0] != b[0]:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _covered(words: Sequence[str], by: Sequence[str]) -> bool:
    return all(any(spelling_variant(w, other) for other in by) for w in words)


def _same_thing(left: tuple[str, ...], right: tuple[str, ...]) -> bool:
    """Same head noun, and one name's words all in the other's."""
    return spelling_variant(left[-1], right[-1]) and (_covered(left, right) or _covered(right, left))


def _alternatives(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    """"perfume and body mist" -> [perfume], [body mist] (and the whole name)."""
    parts, current = [], []
    for word in words:
        if word == "and":
            parts.append(tuple(current))
            current = []
        else:
            current.append(word)
    parts.append(tuple(current))
    return [words] + [p for p in parts if p and len(parts) > 1]


def values_match(predicted: str, label: str, key: str, rule: str = "strict") -> bool:
    """Does a predicted attribute value name the catalog's label? `rule` "strict" or
    "lenient", as the module docstring says."""
    left, right = phrase_key(predicted), phrase_key(label)
    if not left or not right:
        return False
    if left == right:
        return True
    if rule != "lenient" or key != PRODUCT_TYPE_KEY:
        return False
    return any(_same_thing(a, b) for a in _alternatives(left) for b in _alternatives(right))
