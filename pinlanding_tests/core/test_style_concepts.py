"""Style concepts: decomposition into vocabulary combinations (offline MiniLM, and the LLM
with validation), the merge of combination pages into concept pages, and their P@10."""

from __future__ import annotations

import polars as pl
import pytest

from pinlanding_assets.core.evaluation import concept_precision_at_k
from pinlanding_assets.core.llm_client import CachedLLMClient, LLMSettings
from pinlanding_assets.core.matching import MatchingConfig, match_pages_duckdb
from pinlanding_assets.core.style_concepts import (
    CONCEPT_SCHEMA,
    STYLE_CONCEPTS_FILE,
    Concept,
    ConceptConfig,
    LLMDecomposer,
    OfflineDecomposer,
    Vocabulary,
    combination_attribute_rows,
    combination_matching,
    concept_pages,
    concepts_without_pages,
    decompose_concepts,
    load_concepts,
    propose_concepts,
    validate_combination,
)
from pinlanding_assets.core.vocabulary import minilm_encoder
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_tests.fake_openai_server import Fault, FakeOpenAIServer, PlausibleModel, fake_openai  # noqa: F401

# A small catalog: (product type, occasion, colour, material) x products each.
CATALOG = [
    ("track pants", "sports", "black", None, 14),
    ("t-shirt", "sports", "grey", None, 12),
    ("t-shirt", "casual", "white", "cotton", 15),
    ("kurta", "ethnic", "maroon", "silk", 13),
    ("shirt", "formal", "white", "cotton", 16),
    ("handbag", "casual", "beige", "leather", 11),
    ("trousers", "formal", "black", None, 3),  # too few for a page of its own
]
VOCABULARY = {
    "product_type": ["track pants", "t-shirt", "kurta", "shirt", "handbag", "trousers"],
    "occasion": ["sports", "casual", "ethnic", "formal"],
    "color": ["black", "grey", "white", "maroon", "beige"],
    "material": ["cotton", "silk", "leather"],
}


def assignments() -> pl.DataFrame:
    rows, n = [], 0
    for product_type, occasion, color, material, count in CATALOG:
        for _ in range(count):
            pid = f"p{n:03d}"
            n += 1
            rows += [(pid, "product_type", product_type, 0.9), (pid, "occasion", occasion, 0.8), (pid, "color", color, 0.95)]
            if material:
                rows.append((pid, "material", material, 0.7))
    return pl.DataFrame(rows, schema={"product_id": pl.String, "key": pl.String, "value": pl.String, "probability": pl.Float32}, orient="row")


def kept() -> pl.DataFrame:
    return pl.DataFrame([(k, v) for k, values in VOCABULARY.items() for v in values], schema={"key": pl.String, "value": pl.String}, orient="row")


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return Vocabulary.build(kept(), assignments())


CONFIG = ConceptConfig(min_support=10)
ATHLEISURE = Concept("athleisure", ("sports", "track pants"))
ETHNIC = Concept("festive ethnic wear", ("ethnic", "kurta", "silk"))
OFFICE = Concept("office essentials", ("formal", "shirt", "trousers"))
NOWHERE = Concept("astronaut gear", ("space helmet", "oxygen tank"))


def attribute_sets(table: pl.DataFrame, concept: str, status: str = "kept") -> list[set[tuple[str, str]]]:
    rows = table.filter((pl.col("concept") == concept) & (pl.col("status") == status))
    return [{(a["key"], a["value"]) for a in attrs} for attrs in rows.get_column("attributes").to_list()]


def test_the_concepts_file_loads() -> None:
    concepts = load_concepts(STYLE_CONCEPTS_FILE)
    assert len(concepts) >= 10
    assert {"athleisure", "quiet luxury", "office essentials"} <= {c.name for c in concepts}
    assert all(c.hints and c.source == "file" for c in concepts)


def test_validation_rejects_values_outside_the_vocabulary(vocabulary) -> None:
    assert validate_combination((("material", "cashmere"), ("product_type", "kurta")), vocabulary, CONFIG).startswith("outside the curated vocabulary: material: cashmere")
    assert validate_combination((("color", "black"), ("material", "silk")), vocabulary, CONFIG) == "names no product_type or occasion"
    assert "two values of one key" in validate_combination((("color", "black"), ("color", "grey"), ("occasion", "sports")), vocabulary, CONFIG)
    assert validate_combination((("occasion", "formal"), ("product_type", "trousers")), vocabulary, CONFIG) == "3 products < min_support 10"
    assert validate_combination((("occasion", "sports"), ("product_type", "track pants")), vocabulary, CONFIG) is None


def test_offline_minilm_decomposes_concepts_into_supported_vocabulary_combinations(vocabulary) -> None:
    decomposer = OfflineDecomposer(minilm_encoder(), vocabulary, CONFIG)
    table = decompose_concepts([ATHLEISURE, ETHNIC, OFFICE, NOWHERE], decomposer, vocabulary, CONFIG)
    assert dict(table.schema) == CONCEPT_SCHEMA
    for row in table.filter(pl.col("status") == "kept").iter_rows(named=True):
        attributes = [(a["key"], a["value"]) for a in row["attributes"]]
        assert validate_combination(attributes, vocabulary, CONFIG) is None
        assert row["support"] >= CONFIG.min_support and row["decomposer"] == "minilm"
    athleisure = attribute_sets(table, "athleisure")
    assert athleisure and all(("occasion", "sports") in s or ("product_type", "track pants") in s for s in athleisure)
    assert {("product_type", "track pants")} <= set().union(*athleisure)
    ethnic = attribute_sets(table, "festive ethnic wear")
    assert ethnic and all(("product_type", "kurta") in s or ("occasion", "ethnic") in s for s in ethnic)
    office = attribute_sets(table, "office essentials")
    assert office and all(("product_type", "shirt") in s or ("occasion", "formal") in s for s in office)
    assert not any(("product_type", "trousers") in s for s in office)  # 3 products: no support
    # no combination is a subset of another kept one (they would show the same products twice)
    for sets in (athleisure, ethnic, office):
        assert not any(a < b for a in sets for b in sets)
    # reported, not a crash
    assert concepts_without_pages(table) == ["astronaut gear"]
    none_row = table.filter(pl.col("concept") == "astronaut gear").row(0, named=True)
    assert none_row["status"] == "none" and none_row["combination_slug"] is None


def test_a_concept_slug_never_takes_a_mined_collections_slug(vocabulary) -> None:
    decomposer = OfflineDecomposer(minilm_encoder(), vocabulary, CONFIG)
    table = decompose_concepts([ATHLEISURE], decomposer, vocabulary, CONFIG, taken_slugs={"athleisure"})
    assert set(table.get_column("concept_slug")) == {"athleisure-style"}


def llm_client(server: FakeOpenAIServer, tmp_path) -> CachedLLMClient:
    settings = LLMSettings(model="fake-llm", base_url=server.base_url, api_key="test", max_retries=1, backoff_base_s=0.01, timeout_s=5)
    return CachedLLMClient(settings, Warehouse(tmp_path / "warehouse.duckdb"), sleep=lambda s: None)


def test_llm_decomposition_is_validated_and_cached(fake_openai, tmp_path, vocabulary) -> None:
    fake_openai.responder = PlausibleModel()
    decomposer = LLMDecomposer(llm_client(fake_openai, tmp_path), vocabulary, CONFIG)
    table = decompose_concepts([ETHNIC, OFFICE], decomposer, vocabulary, CONFIG)
    assert fake_openai.request_count() == 2
    # the vocabulary went to the model as data
    assert "<vocabulary>" in fake_openai.requests[0].body["messages"][1]["content"]
    assert attribute_sets(table, "festive ethnic wear") == [{("product_type", "kurta"), ("occasion", "ethnic")}]
    assert attribute_sets(table, "office essentials") == [{("product_type", "shirt"), ("occasion", "formal")}]
    rejected = table.filter(pl.col("status") == "rejected")
    # the invented "material: cashmere" is rejected, so is "trousers" (3 products)
    cashmere = rejected.filter(pl.col("reason").str.contains("cashmere"))
    assert cashmere.height == 2 and cashmere.get_column("reason").str.starts_with("outside the curated vocabulary").all()
    assert cashmere.get_column("support").to_list() == [0, 0]
    assert rejected.filter(pl.col("reason").str.contains("min_support")).height == 1
    assert set(table.get_column("decomposer")) == {"llm"}
    # cached: a second run pays nothing and decides the same
    again = decompose_concepts([ETHNIC, OFFICE], LLMDecomposer(llm_client(fake_openai, tmp_path), vocabulary, CONFIG), vocabulary, CONFIG)
    assert fake_openai.request_count() == 2
    assert again.equals(table)


def test_a_failed_llm_call_falls_back_to_minilm(fake_openai, tmp_path, vocabulary) -> None:
    fake_openai.responder = PlausibleModel()
    fake_openai.inject(Fault.server_error(500), Fault.server_error(500), match="athleisure")
    offline = OfflineDecomposer(minilm_encoder(), vocabulary, CONFIG)
    table = decompose_concepts([ATHLEISURE], LLMDecomposer(llm_client(fake_openai, tmp_path), vocabulary, CONFIG, fallback=offline), vocabulary, CONFIG)
    assert table.get_column("decomposer").str.starts_with("minilm-fallback").all()
    assert attribute_sets(table, "athleisure")


def test_llm_proposed_concepts_skip_known_and_unsafe_names(fake_openai, tmp_path, vocabulary) -> None:
    fake_openai.responder = PlausibleModel()
    proposed = propose_concepts(llm_client(fake_openai, tmp_path), vocabulary, 5, [ATHLEISURE])
    assert [(c.name, c.source) for c in proposed] == [("weekend sport", "llm")]  # "<b>Click here</b>" is refused
    assert propose_concepts(llm_client(fake_openai, tmp_path), vocabulary, 5, [Concept("weekend sport")]) == []
    assert propose_concepts(llm_client(fake_openai, tmp_path), vocabulary, 0, []) == []


def test_combination_pages_merge_into_one_concept_page() -> None:
    decompositions = pl.DataFrame(
        [
            {"concept_slug": "c", "concept": "c", "title": "C", "source": "file", "hints": [], "combination": i, "combination_slug": f"c--{i}",
             "attributes": [], "n_attributes": 1, "support": 1, "score": None, "status": "kept", "reason": None, "decomposer": "minilm"}
            for i in (1, 2)
        ],
        schema=CONCEPT_SCHEMA,
    )
    combination_pages = pl.DataFrame(
        {"slug": ["c--1", "c--1", "c--2", "c--2"], "product_id": ["a", "b", "b", "z"], "relevance": [0.5, 0.6, 0.9, 0.6], "rank": [2, 1, 1, 2]},
        schema={"slug": pl.String, "product_id": pl.String, "relevance": pl.Float64, "rank": pl.Int64},
    )
    pages = concept_pages(combination_pages, decompositions, MatchingConfig(min_page_size=1, max_page_size=2))
    # b on both combinations keeps its best relevance (from c--2); ties by product id; cut at 2
    assert pages.select("product_id", "rank", "combination_slug").rows() == [("b", 1, "c--2"), ("z", 2, "c--2")]
    assert concept_pages(combination_pages, decompositions, MatchingConfig(min_page_size=4)).is_empty()


def test_concept_pages_from_the_matching_engine_and_their_precision(vocabulary) -> None:
    decomposer = OfflineDecomposer(minilm_encoder(), vocabulary, CONFIG)
    table = decompose_concepts([ATHLEISURE, ETHNIC], decomposer, vocabulary, CONFIG)
    rows = combination_attribute_rows(table)
    matching = MatchingConfig(min_page_size=10)
    combination_pages = match_pages_duckdb(assignments(), rows, combination_matching(matching))
    pages = concept_pages(combination_pages, table, matching)
    assert set(pages.get_column("slug")) == {"athleisure", "festive-ethnic-wear"}
    # every product on a concept page carries every attribute of the combination it matched
    carried = set(assignments().select("product_id", "key", "value").iter_rows())
    by_slug = {slug: set(frame.select("key", "value").iter_rows()) for (slug,), frame in rows.group_by("slug")}
    for product_id, combination in pages.select("product_id", "combination_slug").iter_rows():
        assert all((product_id, k, v) in carried for k, v in by_slug[combination])
    # P@10 judged over each product's own combination: labels right for all but one kurta
    truth = assignments().select("product_id", "key", "value")
    kurta_pages = pages.filter(pl.col("slug") == "festive-ethnic-wear").sort("rank")
    wrong = kurta_pages.get_column("product_id")[0]
    truth = truth.filter(~((pl.col("product_id") == wrong) & (pl.col("key") == "product_type")))
    precision = dict(concept_precision_at_k(pages, rows, truth, 10).iter_rows())
    assert precision["athleisure"] == 1.0 and precision["festive-ethnic-wear"] == pytest.approx(0.9)
