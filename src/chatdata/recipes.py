"""The recipes chatdata rebuilds, each declared in one place. Its declaration is copied into build.json and the card."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from chatdata.errors import ChatdataError


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    rebuilds: str
    reference: str
    gates: tuple[str, ...] = ("gates",)
    flatten: Literal["threads", "top_ranked"] = "threads"
    keep_user_ended: bool = False
    dialogue_filters: tuple[str, ...] = ()
    output: Literal["sft", "prefs"] = "sft"
    text_format: Literal["guanaco"] | None = None
    splits: tuple[str, str] = ("train_sft", "test_sft")
    test_fraction: float = 0.05
    decontaminate: bool = False
    languages: tuple[str, ...] = ("en",)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="oasst_en",
            summary="English oasst threads as `messages` (StarChat-alpha's data)",
            rebuilds="HuggingFaceH4/oasst1_en",
            reference="https://huggingface.co/datasets/HuggingFaceH4/oasst1_en",
            dialogue_filters=("lang_field_en",),
            notes=(
                "Every root-to-leaf thread that ends on an assistant turn (Open-Assistant's loader rule).",
                "Split by tree: oasst's own train/validation when present, else a sha256 hash of the tree id.",
            ),
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ChatdataError(f"unknown recipe '{name}'; known: {', '.join(RECIPES)} (see `chatdata recipes`)") from None
