"""What the LLM stages may answer: one pydantic model per structured-output answer.

Each model is both sides of a call through `CachedLLMClient`:

* `wire_schema()` is the JSON schema sent as `response_format` (strict structured outputs:
  every property required, `additionalProperties: false`; no titles, nested models inlined,
  keys in the order the project always sent them, so the request bytes are what they were);
* `from_reply()` reads the reply into the model, or raises `InvalidOutput` naming every
  problem ("$.verdicts[0].safe: Input should be a valid boolean"); the client shows it to
  the model in its one repair attempt.

Validation is strict, as JSON is typed: "true" is not a boolean, 1 is not true, 3.0 is not
an integer. `schema_name` names the answer on the wire and in the cache table.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError


class InvalidOutput(ValueError):
    """The model answered, but not with JSON matching the schema."""


class StrictJson(BaseModel):
    """A JSON object of a strict structured-output schema (also the items of a list)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Strict mode sends every property as required: a default here would be a schema
        # the endpoint rejects, or a field the model can never leave out.
        optional = [name for name, field in cls.model_fields.items() if not field.is_required()]
        if optional:
            raise TypeError(f"{cls.__name__}: structured-output fields must all be required, not {optional}")


class StructuredAnswer(StrictJson):
    """A whole answer: the schema of a request and the validation of its reply."""

    schema_name: ClassVar[str]

    @classmethod
    def wire_schema(cls) -> dict:
        generated = cls.model_json_schema()
        return _wire_node(generated, generated.get("$defs", {}))

    @classmethod
    def from_reply(cls, text: str, finish_reason: str | None = None) -> "StructuredAnswer":
        if finish_reason == "length":
            raise InvalidOutput("the answer was truncated (finish_reason=length)")
        text = text.strip()
        if text.startswith("```"):  # some servers wrap JSON in a fence despite the schema
            text = text.strip("`").removeprefix("json").strip()
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidOutput(_describe(exc)) from None


def _json_integer(value: object) -> object:
    # A Literal of ints alone would take true (== 1) and 3.0 (== 3): JSON says otherwise.
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value


# -- the answers ---------------------------------------------------------------------------
# No docstrings on these classes: pydantic would send them as the schema's "description",
# text the model reads. The prompts say what to answer; these say only its shape.


class AttributePair(StrictJson):
    key: str
    value: str


class ProductAttributes(StructuredAnswer):  # the VLM's attributes of one product (vlm_extraction)
    schema_name = "product_attributes"
    attributes: list[AttributePair]


class AttributeVerdict(StrictJson):
    key: str
    value: str
    searchable: bool
    visually_grounded: bool
    safe: bool
    reason: str


class AttributeVerdicts(StructuredAnswer):  # the vocabulary judge's verdicts on a batch of pairs
    schema_name = "attribute_verdicts"
    verdicts: list[AttributeVerdict]


class CollectionValidation(StructuredAnswer):  # title_writer step 1: is the combination a page?
    schema_name = "collection_validation"
    valid: bool
    reason: str


class CollectionTitle(StructuredAnswer):  # title_writer step 2: the page's title
    schema_name = "collection_title"
    title: str


class CollectionTitleScore(StructuredAnswer):  # title_writer step 3: the title's quality, 1 to 5
    schema_name = "collection_title_score"
    score: Annotated[Literal[1, 2, 3, 4, 5], BeforeValidator(_json_integer)]
    reason: str


class ConceptCombination(StrictJson):
    attributes: list[AttributePair]
    rationale: str


class ConceptDecomposition(StructuredAnswer):  # style_concepts: a concept as attribute combinations
    schema_name = "concept_decomposition"
    combinations: list[ConceptCombination]


class ProposedConcept(StrictJson):
    name: str
    hints: list[str]


class ConceptProposals(StructuredAnswer):  # style_concepts: concepts the LLM proposes from the vocabulary
    schema_name = "concept_proposals"
    concepts: list[ProposedConcept]


# -- schema and errors as sent ------------------------------------------------------------

_KEY_ORDER = ("type", "enum", "properties", "items", "required", "additionalProperties")


def _wire_node(node: object, defs: dict) -> object:
    """pydantic's schema as structured outputs get it: references inlined, titles dropped,
    keys in `_KEY_ORDER` (any other key kept, after them)."""
    if isinstance(node, list):
        return [_wire_node(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _wire_node(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    out = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        # "properties" maps field names (one may be "title") to schemas
        out[key] = {name: _wire_node(item, defs) for name, item in value.items()} if key == "properties" else _wire_node(value, defs)
    rank = {key: i for i, key in enumerate(_KEY_ORDER)}
    return dict(sorted(out.items(), key=lambda item: rank.get(item[0], len(rank))))


def _describe(error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    if problems and problems[0]["type"] == "json_invalid":
        return f"not valid JSON ({problems[0]['msg'].removeprefix('Invalid JSON: ')})"
    lines = [f"{_path(p['loc'])}: {p['msg']}" for p in problems[:5]]
    return "does not match the schema: " + "; ".join(lines)


def _path(loc: tuple) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
