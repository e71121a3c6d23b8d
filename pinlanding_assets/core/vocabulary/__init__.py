"""Vocabulary curation: from the extractor's long, noisy tail to a compact attribute set.

Steps, in this order, each recorded in the output so every dropped or merged value is
explained (`step` and `reason` columns):

1. normalization: case, whitespace, punctuation, plural -> singular, obvious synonyms
   (`text_rules.normalize_value`); renames from the human overrides file are applied here
   too (they always win);
2. semantic merging of near-duplicates within a key (`merge`: an offline text encoder,
   MiniLM), guarded by spelling similarity and by lists of values known to be distinct. It
   runs before the frequency filter so that rare spellings count toward their canonical
   value instead of being dropped for rarity;
3. frequency filter: minimum product count and minimum share of the key's labeled products;
4. judge: searchable? visually grounded? safe? (`judge`: an LLM through `CachedLLMClient`,
   or the offline rules, which also back up any value the LLM did not answer for);
5. safety denylist;
6. human overrides (`overrides`: `data/vocabulary_overrides.csv`, allow / deny / rename),
   which win.

`curate.curate_vocabulary` runs them (settings: `config.CurationConfig`). Output: one row
per raw (key, value) with its normalized and canonical form, frequency, merged-from, status
(kept/dropped), the deciding step and the reason.
"""

from .config import CurationConfig
from .curate import STEPS, VOCABULARY_SCHEMA, canonical_labels, curate_vocabulary, curation_funnel, kept_attributes
from .judge import DEFAULT_DENYLIST, Judge, LLMJudge, RuleJudge, Verdict
from .merge import TextEncoder, merge_near_duplicates, minilm_encoder
from .overrides import OVERRIDES_SCHEMA, OverridesError, load_overrides

__all__ = [
    "DEFAULT_DENYLIST",
    "OVERRIDES_SCHEMA",
    "STEPS",
    "VOCABULARY_SCHEMA",
    "CurationConfig",
    "Judge",
    "LLMJudge",
    "OverridesError",
    "RuleJudge",
    "TextEncoder",
    "Verdict",
    "canonical_labels",
    "curate_vocabulary",
    "curation_funnel",
    "kept_attributes",
    "load_overrides",
    "merge_near_duplicates",
    "minilm_encoder",
]
