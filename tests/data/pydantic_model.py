"""A tool input as an agent framework declares it with pydantic; its JSON
Schema (tests/data/pydantic-schema.json) is what
`python3 tests/data/pydantic_model.py` prints."""

import json
from datetime import date
from enum import Enum
from typing import Literal, Optional

from pydantic import BaseModel, Field


class Unit(str, Enum):
    tokens = "tokens"
    characters = "characters"


class Span(BaseModel):
    first_page: int = Field(ge=1)
    last_page: int = Field(ge=1)


class Filter(BaseModel):
    kind: Literal["include", "exclude"]
    pattern: str = Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=40)


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=200)
    limit: int = Field(default=10, ge=1, le=100)
    unit: Unit = Unit.tokens
    pages: Optional[Span] = None
    filters: list[Filter] = Field(default_factory=list, max_length=8)
    since: Optional[date] = None


if __name__ == "__main__":
    print(json.dumps(SearchRequest.model_json_schema(), indent=2, sort_keys=True))
