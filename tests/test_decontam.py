from __future__ import annotations

import polars as pl

from chatdata.filters.base import FilterSpec, apply_filters
from chatdata.filters.decontam import DecontamFilter, humaneval_prompts, ngram_index
from chatdata.schema import CHAT_MESSAGE


def _frame(dialogues: list[list[tuple[str, str]]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"messages": [[{"role": r, "content": c} for r, c in d] for d in dialogues]},
        schema={"messages": pl.List(CHAT_MESSAGE)},
    )


def _filter(**settings: object) -> DecontamFilter:
    return DecontamFilter(FilterSpec(name="decontam_humaneval", filter="decontam", level="dialogue", settings=settings))


def test_humaneval_is_bundled() -> None:
    prompts = humaneval_prompts()
    assert len(prompts) == 164
    idx = ngram_index("humaneval", 10)
    assert all(g.startswith(" ") and g.endswith(" ") and len(g.split()) == 10 for g in list(idx)[:100])


def test_user_turn_with_a_humaneval_prompt_is_dropped() -> None:
    p0 = humaneval_prompts()["HumanEval/0"]
    frame = _frame(
        [
            [
                ("user", "Can you solve this?\n" + p0.upper()),
                ("assistant", "Sure."),
            ],  # case and spacing folded
            [("user", "Explain this code"), ("assistant", p0)],  # assistant turns not scoped
            [
                ("user", "from typing import List\n\n\ndef f(x: List[int]) -> int:"),
                ("assistant", "ok"),
            ],  # boilerplate
        ]
    )
    out = apply_filters(frame, [_filter()])
    assert out.counts == {"decontam_humaneval: humaneval_overlap": 1}
    assert out.dropped["reject_evidence"][0] == "10-gram overlap with HumanEval/0"
    assert out.kept.height == 2


def test_scope_can_include_assistant_turns() -> None:
    p0 = humaneval_prompts()["HumanEval/0"]
    out = apply_filters(_frame([[("user", "Explain"), ("assistant", p0)]]), [_filter(roles=["user", "assistant"])])
    assert out.dropped.height == 1


def test_short_overlap_is_not_contamination() -> None:
    import re

    tokens = re.findall(r"\w+", humaneval_prompts()["HumanEval/0"])
    snippet = " ".join(tokens[:9])
    out = apply_filters(_frame([[("user", snippet), ("assistant", "x")]]), [_filter()])
    assert out.dropped.height == 0
