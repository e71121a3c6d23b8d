"""The answer models: the schema each stage sends, the replies they accept and refuse, and
the cache keys of the three callers (a changed key would pay again for every cached call)."""

import json
from pathlib import Path

import pytest

from pinlanding_assets.core.collection_mining import TitleCandidate
from pinlanding_assets.core.llm_client import CachedLLMClient, LLMRequest, LLMSettings
from pinlanding_assets.core.llm_responses import (
    AttributeVerdicts,
    CollectionTitle,
    CollectionTitleScore,
    CollectionValidation,
    InvalidOutput,
    ProductAttributes,
    StructuredAnswer,
)
from pinlanding_assets.core.title_writer import LLMTitleWriter
from pinlanding_assets.core.vlm_extraction import VLMExtractor
from pinlanding_assets.core.vocabulary import LLMJudge
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_tests.fake_openai_server import PlausibleModel, fake_openai, last_user_text  # noqa: F401 (fixture)

# The schemas as the stages sent them before they came from pydantic: the wire must not change.
STRING, BOOLEAN = {"type": "string"}, {"type": "boolean"}
SENT_SCHEMAS = {
    "product_attributes": {
        "type": "object",
        "properties": {
            "attributes": {
                "type": "array",
                "items": {"type": "object", "properties": {"key": STRING, "value": STRING}, "required": ["key", "value"], "additionalProperties": False},
            }
        },
        "required": ["attributes"],
        "additionalProperties": False,
    },
    "attribute_verdicts": {
        "type": "object",
        "properties": {
            "verdicts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"key": STRING, "value": STRING, "searchable": BOOLEAN, "visually_grounded": BOOLEAN, "safe": BOOLEAN, "reason": STRING},
                    "required": ["key", "value", "searchable", "visually_grounded", "safe", "reason"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["verdicts"],
        "additionalProperties": False,
    },
    "collection_validation": {
        "type": "object", "properties": {"valid": BOOLEAN, "reason": STRING}, "required": ["valid", "reason"], "additionalProperties": False,
    },
    "collection_title": {"type": "object", "properties": {"title": STRING}, "required": ["title"], "additionalProperties": False},
    "collection_title_score": {
        "type": "object",
        "properties": {"score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}, "reason": STRING},
        "required": ["score", "reason"],
        "additionalProperties": False,
    },
}
ANSWERS = [ProductAttributes, AttributeVerdicts, CollectionValidation, CollectionTitle, CollectionTitleScore]


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: a.schema_name)
def test_each_answer_model_gives_the_schema_as_it_was_sent(answer):
    # Compared as JSON text: key order included, so the request bytes are unchanged.
    assert json.dumps(answer.wire_schema()) == json.dumps(SENT_SCHEMAS[answer.schema_name])


def settings_for(server, **overrides) -> LLMSettings:
    return LLMSettings(**(dict(model="fake-llm", base_url=server.base_url, api_key="test", max_retries=1, backoff_base_s=0.01, timeout_s=5) | overrides))


def test_the_judge_and_the_title_writer_send_their_models_schemas(fake_openai, tmp_path: Path):
    fake_openai.responder = PlausibleModel()
    client = CachedLLMClient(settings_for(fake_openai), Warehouse(tmp_path / "w.duckdb"))
    LLMJudge(client).judge([("color", "red"), ("style", "best seller")])
    LLMTitleWriter(client).write([TitleCandidate("red-shirts", (("color", "red"), ("product_type", "shirt")), 12)])
    sent = {r.body["response_format"]["json_schema"]["name"]: r.body["response_format"] for r in fake_openai.requests}
    assert set(sent) == {"attribute_verdicts", "collection_validation", "collection_title", "collection_title_score"}
    for name, response_format in sent.items():
        assert response_format == {"type": "json_schema", "json_schema": {"name": name, "schema": SENT_SCHEMAS[name], "strict": True}}


# -- replies refused -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, problem",
    [
        ('{"valid": true}', "$.reason: Field required"),
        ('{"valid": true, "reason": "ok", "note": "x"}', "$.note: Extra inputs are not permitted"),
        ('{"valid": "true", "reason": "ok"}', "$.valid: Input should be a valid boolean"),
        ('{"valid": 1, "reason": "ok"}', "$.valid: Input should be a valid boolean"),
        ("Sure! {valid: yes", "not valid JSON"),
    ],
)
def test_a_reply_off_the_schema_is_refused_with_where_and_why(reply, problem):
    with pytest.raises(InvalidOutput, match=problem.replace("$", r"\$")):
        CollectionValidation.from_reply(reply)


def test_nested_problems_are_located_and_json_numbers_are_not_booleans():
    with pytest.raises(InvalidOutput) as caught:
        AttributeVerdicts.from_reply('{"verdicts": [{"key": "color", "value": 3, "searchable": true, "visually_grounded": true, "safe": true, "reason": ""}]}')
    assert str(caught.value) == "does not match the schema: $.verdicts[0].value: Input should be a valid string"
    for score in ("true", "3.0", '"3"', "6"):
        with pytest.raises(InvalidOutput, match=r"\$\.score"):
            CollectionTitleScore.from_reply(f'{{"score": {score}, "reason": "ok"}}')
    assert CollectionTitleScore.from_reply('```json\n{"score": 3, "reason": "ok"}\n```').score == 3  # a fenced reply is read
    with pytest.raises(InvalidOutput, match="truncated"):
        CollectionTitle.from_reply('{"title": "Red', finish_reason="length")


def test_an_answer_model_with_an_optional_field_is_refused_at_definition():
    with pytest.raises(TypeError, match="must all be required"):
        class Loose(StructuredAnswer):
            schema_name = "loose"
            note: str = ""


class Echo(StructuredAnswer):
    schema_name = "echo"
    echo: str


@pytest.mark.parametrize(
    "bad_reply, problem",
    [({}, "$.echo: Field required"), ({"echo": "x", "extra": 1}, "$.extra: Extra inputs are not permitted"), ({"echo": 7}, "$.echo: Input should be a valid string")],
    ids=["missing", "extra", "wrong-type"],
)
def test_a_refused_reply_is_repaired_once_then_counted_as_a_failure(fake_openai, tmp_path: Path, bad_reply, problem):
    fake_openai.responder = lambda body: bad_reply
    client = CachedLLMClient(settings_for(fake_openai), Warehouse(tmp_path / "w.duckdb"))
    [answer] = client.complete_json([LLMRequest("key-bad", [{"role": "user", "content": "<bad>"}], Echo)])
    assert not answer.ok and answer.error == f"invalid output after one repair attempt: does not match the schema: {problem}"
    assert (client.stats.calls_made, client.stats.repairs, client.stats.failures) == (2, 1, 1)
    repair = last_user_text(fake_openai.requests[1].body)
    assert repair.startswith(f"Your previous answer could not be used: does not match the schema: {problem}.")


def test_a_cached_answer_its_model_no_longer_accepts_is_asked_again(fake_openai, tmp_path: Path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    CachedLLMClient(settings_for(fake_openai), warehouse).complete_json([LLMRequest("key-a", [{"role": "user", "content": "<a>"}], Echo)])

    class Renamed(StructuredAnswer):  # the same stage, its answer changed without a new prompt version
        schema_name = "echo"
        said: str

    fake_openai.responder = lambda body: {"said": "<a>"}
    client = CachedLLMClient(settings_for(fake_openai), warehouse)
    [answer] = client.complete_json([LLMRequest("key-a", [{"role": "user", "content": "<a>"}], Renamed)])
    assert answer.data == Renamed(said="<a>") and client.stats.cache_hits == 0 and client.stats.calls_made == 1
    again = CachedLLMClient(settings_for(fake_openai), warehouse)
    assert again.complete_json([LLMRequest("key-a", [{"role": "user", "content": "<a>"}], Renamed)])[0].cached  # replaced in the cache


# -- cache keys ----------------------------------------------------------------------------
# Computed by the code before the answer models existed. A change here re-pays every call
# cached on users' disks: change a key only on purpose (a new prompt version).


def test_the_three_callers_cache_keys_are_unchanged(fake_openai, tmp_path: Path):
    fake_openai.responder = PlausibleModel()
    warehouse = Warehouse(tmp_path / "w.duckdb")
    client = CachedLLMClient(settings_for(fake_openai, model="gpt-4o-mini"), warehouse)

    [(judge_request, _)] = LLMJudge(client).requests([("color", "navy blue"), ("color", "red")])
    assert judge_request.cache_key == "f5d969d52a13612fee1e673b63d75d5b1c37f96809c267bec155b00011e5fba7"

    product = {"product_id": "p1", "image_path": "/nonexistent.jpg", "image_hash": "abc123", "title": "Red Shirt", "description": "A red cotton shirt", "category": "Topwear"}
    assert VLMExtractor(client).prepare(product).request.cache_key == "6a67e4a7c6a05ce35939c1a86c836e1571969d950b24566376a8507c76fbbc16"

    [titled] = LLMTitleWriter(client).write([TitleCandidate("red-shirts", (("color", "red"), ("product_type", "shirt")), 12)])
    assert (titled.title, titled.writer) == ("Red Shirts", "llm")
    keys = dict(warehouse.read("SELECT schema_name, cache_key FROM llm_cache").rows())
    assert keys == {
        "collection_validation": "3c355181a5aa341abb8ab55a7eec0a81e7f8f2be00035440888c7ea596c84f71",
        "collection_title": "a33d8cfc80d86033c0cd0d07d06090192ab97f5ee1893b679041c651b0a5b9be",
        "collection_title_score": "664143f2e1b47af32a3c13a76ebb8b0b7ef137dcf67ce9c7da36ad54100508e4",
    }
