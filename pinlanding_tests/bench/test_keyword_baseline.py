"""The BM25 keyword baseline of bench/bench_page_quality.py."""

from __future__ import annotations

from bench.keyword_baseline import KeywordBaseline, tokenize


def test_tokenize_normalizes_plurals_and_t_shirts() -> None:
    assert tokenize(["Navy Blue T-Shirts for Men", "Nike Men Tshirt", "Watches", "Dresses"]) == [
        ["navy", "blue", "tshirt", "men"],
        ["nike", "men", "tshirt"],
        ["watch"],
        ["dress"],
    ]


def test_top_products_ranks_by_bm25() -> None:
    baseline = KeywordBaseline(
        ["p1", "p2", "p3", "p4"],
        ["Nike Men Blue Tshirt", "Puma Women Black Shoes", "Men Navy Blue Casual Shirt", "Fastrack Men Black Watch"],
    )
    top = baseline.top_products(["navy-shirts", "nothing", "watches"], ["Navy Blue Shirts for Men", "Zzz Qqq", "Black Watches"], k=2)
    assert top.filter(top["slug"] == "navy-shirts").get_column("product_id").to_list() == ["p3", "p1"]
    assert top.filter(top["slug"] == "watches").get_column("product_id")[0] == "p4"
    assert "nothing" not in top.get_column("slug").to_list()
    assert top.get_column("rank").max() <= 2


def test_tokenize_reads_tricky_titles_like_the_pipeline() -> None:
    # With a normalizer and stemmer of its own the baseline read "Slim Fit Shirt" as "slim
    # fitshirt", kept "tee" apart from "tshirt", and "ty" (Ties), "kurtis", "scarve" apart
    # from "tie", "kurti", "scarf"; it now reads titles with text_rules like the pipeline (and
    # its accidental "sweat shirt" -> "sweatshirt" goes too).
    assert tokenize(["Slim Fit Shirt", "Black Tees for Men", "Navy Ties", "Alvaro Men Black Tie", "Women Kurtis", "Biba Women Kurti", "Woollen Scarves", "Sweat Shirt", "Men's Watches"]) == [
        ["slim", "fit", "shirt"], ["black", "tshirt", "men"], ["navy", "tie"], ["alvaro", "men", "black", "tie"], ["women", "kurti"],
        ["biba", "women", "kurti"], ["woollen", "scarf"], ["sweat", "shirt"], ["men", "watch"]]
