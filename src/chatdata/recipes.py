"""The recipes chatdata rebuilds, each declared in one place. Its declaration is copied into build.json and the card."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from chatdata.errors import ChatdataError

#: the dialects whose special strings may not appear inside content (they would forge turns when rendered)
CHECK_DIALECTS = ("starchat", "chatml")


@dataclass(frozen=True)
class Recipe:
    """What a recipe does, stage by stage (all names refer to ``filters/*.yaml`` specs)."""

    name: str
    summary: str
    rebuilds: str
    reference: str
    gates: tuple[str, ...] = ("gates",)
    flatten: Literal["threads", "top_ranked", "pairs"] = "threads"
    keep_user_ended: bool = False
    pair_mode: Literal["best_vs_worst", "all_pairs"] = "best_vs_worst"
    dialogue_filters: tuple[str, ...] = ()
    decontaminate: bool = True
    check_dialects: tuple[str, ...] = CHECK_DIALECTS
    text_format: Literal["guanaco"] | None = None
    splits: tuple[str, str] = ("train_sft", "test_sft")
    test_fraction: float = 0.05
    languages: tuple[str, ...] = ("en",)
    notes: tuple[str, ...] = ()

    @property
    def output(self) -> str:
        return "prefs" if self.flatten == "pairs" else "sft"

    @property
    def message_columns(self) -> tuple[str, ...]:
        """The message-list columns a row carries: both sides of a pair, or the dialogue."""
        return ("chosen", "rejected") if self.flatten == "pairs" else ("messages",)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output"] = self.output
        return d


DECONTAM_SPEC = "decontam_humaneval"

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="oasst_en",
            summary="English oasst threads as `messages` (StarChat-alpha's data)",
            rebuilds="HuggingFaceH4/oasst1_en",
            reference="https://huggingface.co/datasets/HuggingFaceH4/oasst1_en",
            dialogue_filters=("english",),
            notes=(
                "Every root-to-leaf thread that ends on an assistant turn (Open-Assistant's loader rule).",
                "English: the root's oasst lang field is en and fastText finds English in the length-weighted "
                "vote over turns (code, URLs and markdown stripped first).",
            ),
        ),
        Recipe(
            name="guanaco",
            summary="The top-ranked path of every tree, all languages, as guanaco `text` and `messages`",
            rebuilds="timdettmers/openassistant-guanaco",
            reference="https://huggingface.co/datasets/timdettmers/openassistant-guanaco",
            flatten="top_ranked",
            text_format="guanaco",
            check_dialects=(*CHECK_DIALECTS, "guanaco"),
            languages=("multilingual",),
            notes=(
                "One path per tree: below each user turn the best surviving rank, trailing user turns dropped.",
                "`text` is `### Human: …### Assistant: …` exactly as the original.",
            ),
        ),
        Recipe(
            name="guanaco_uncensored",
            summary="Guanaco without WizardLM 'uncensoring' phrases in any turn (StarChat-beta's data)",
            rebuilds="StarChat-beta's openassistant-guanaco variant",
            reference="https://huggingface.co/HuggingFaceH4/starchat-beta",
            flatten="top_ranked",
            text_format="guanaco",
            check_dialects=(*CHECK_DIALECTS, "guanaco"),
            dialogue_filters=("uncensor_starchat_beta",),
            languages=("multilingual",),
            notes=(
                "All turns joined with a space, lowercased; dropped if any of the 228 WizardLM phrases or the five "
                "StarChat-beta names is a substring (train and test alike).",
            ),
        ),
        Recipe(
            name="oasst_prefs",
            summary="English preference pairs from oasst ranks (UltraFeedback-binarized layout)",
            rebuilds="preference data in the HuggingFaceH4/ultrafeedback_binarized layout",
            reference="https://huggingface.co/datasets/HuggingFaceH4/ultrafeedback_binarized",
            flatten="pairs",
            dialogue_filters=("english",),
            splits=("train_prefs", "test_prefs"),
            notes=(
                "For each prefix ending on a user turn with >= 2 surviving ranked replies: best vs worst reply "
                "(or all ordered pairs); score = 10 * (k - 1 - p) / (k - 1) for position p among k replies.",
            ),
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ChatdataError(f"unknown recipe '{name}'; known: {', '.join(RECIPES)} (see `chatdata recipes`)") from None
