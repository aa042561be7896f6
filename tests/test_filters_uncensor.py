"""The WizardLM / StarChat-beta phrase filter: exact data, exact substring semantics, both presets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatdata.errors import SpecError
from chatdata.filters.base import FilterSpec, apply_filters
from chatdata.filters.specs import build_filters, load_specs
from chatdata.filters.uncensor import (
    PhraseMatcher,
    UncensorFilter,
    load_phrase_list,
    lower_exact,
    phrases_sha256,
    top_matches,
)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "wizardlm_clean_phrases.json"
MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
WIZARDLM = load_phrase_list("wizardlm_clean_phrases.json")
NAMES = load_phrase_list("starchat_beta_names.json")
BACKSLASH_ENTRIES = ["filter\\_bad\\_language", "f\\*cking", "F\\*ck", "sh\\*t"]


def dialogues(*convs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "dialogue_id": [f"d{i}" for i in range(len(convs))],
            "messages": [[{"role": r, "content": c} for r, c in conv] for conv in convs],
        },
        schema={"dialogue_id": pl.String, "messages": MESSAGES},
    )


def preset(name: str) -> UncensorFilter:
    (f,) = build_filters(load_specs([name]))
    assert isinstance(f, UncensorFilter)
    return f


# ---------------------------------------------------------------------------------------------- the data


def test_phrase_list_matches_reference_exactly() -> None:
    if not REFERENCE.is_file():
        pytest.skip("../shared/reference is not present")
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    assert list(WIZARDLM.phrases) == ref["phrases"]
    assert list(NAMES.phrases) == ref["starchat_beta_additions"]


def test_phrase_list_count_order_and_traps() -> None:
    p = list(WIZARDLM.phrases)
    assert len(p) == 228 and len(set(p)) == 225
    assert p[0] == "text-based AI language model" and p[1] == "domestic violence"
    assert " ESG " in p and "my purpose is to " in p
    assert [x for x in p if "\\" in x] == BACKSLASH_ENTRIES
    assert sorted(x for x, n in Counter(p).items() if n > 1) == [
        "As an AI language model, I do not",
        "As an AI language model, I don't have",
        "I am an AI",
    ]
    assert list(NAMES.phrases) == ["Kilcher", "Koepf", "Open Assistant", "OpenAssistant", "LAION"]
    # the presets pin count and sha256: any edit to the list fails loudly
    for spec_name in ("uncensor_wizardlm", "uncensor_starchat_beta"):
        pinned = preset(spec_name).settings["phrase_lists"][0]
        assert pinned["count"] == 228 and pinned["sha256"] == WIZARDLM.sha256 == phrases_sha256(p)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '[\n  "as an AI"\n  "bias"\n]',
            "invalid JSON",
        ),  # the missing-comma glue bug is a syntax error in JSON
        ('{"phrases": ["a"]}', "JSON array"),
        ('["ok", 3]', "entry 1 is int"),
        ('["ok", ""]', "entry 1 is empty"),
    ],
)
def test_loader_rejects_bad_lists(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError, match=message):
        load_phrase_list(path)


def test_loader_checks_pinned_count_and_sha(tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    path.write_text('["a b", "c"]', encoding="utf-8")
    loaded = load_phrase_list(path, expected_count=2, expected_sha256=phrases_sha256(["a b", "c"]))
    assert loaded.phrases == ("a b", "c") and loaded.describe()["count"] == 2
    with pytest.raises(SpecError, match="the spec expects 3"):
        load_phrase_list(path, expected_count=3)
    with pytest.raises(SpecError, match="sha256"):
        load_phrase_list(path, expected_sha256="0" * 64)
    with pytest.raises(SpecError, match="not found"):
        load_phrase_list(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------ semantics

FULL = PhraseMatcher(WIZARDLM.phrases + NAMES.phrases)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("This review is unbiased.", ["bias"]),  # no word boundaries
        ("ESG report", []),  # " ESG " needs both spaces
        ("Our ESG, report", []),
        ("Our ESG\nreport", []),
        ("Our esg report", [" ESG "]),
        ("My purpose is to", ["my purpose"]),  # "my purpose is to " needs its trailing space
        ("MY PURPOSE IS TO help", ["my purpose", "my purpose is to "]),
        ("what the f*cking hell", []),  # the backslash is literal
        ("what the f\\*cking hell", ["f\\*cking", "F\\*ck"]),  # "f\\*ck" is inside "f\\*cking"
        ("F\\*CK and sh\\*t", ["F\\*ck", "sh\\*t"]),
        ("filter_bad_language", ["filter_bad_language", "bad_language"]),  # the plain twin entries
        ("filter\\_bad\\_language", ["filter\\_bad\\_language"]),  # ... do not match the escaped form
        ("Thanks to Yannic Kilcher and LAION", ["Kilcher", "LAION"]),
        ("plain chat about cooking", []),
    ],
)
def test_literal_traps(text: str, expected: list[str]) -> None:
    assert FULL.match(pl.Series([text])).to_list() == [expected]
    assert FULL.naive(text) == expected


def test_duplicates_and_case_variants_count_once_in_list_order() -> None:
    text = "As an AI language model, I do not have feelings. As an AI language model, I do not know. I am an AI."
    got = FULL.match(pl.Series([text])).to_list()[0]
    assert len(got) == len(set(got))
    assert got.count("As an AI language model, I do not") == 1 and got.count("I am an AI") == 1
    order = {p: i for i, p in reversed(list(enumerate(WIZARDLM.phrases)))}
    assert got == sorted(got, key=order.__getitem__) == FULL.naive(text)


def test_non_ascii_lowercasing_follows_python() -> None:
    # 'İ'.lower() is 'i' + U+0307, so "İ am an AI" does NOT contain "i am an ai"; Kelvin sign K lowers to 'k'
    m = PhraseMatcher(["i am an ai", "keep in mind", "confusión", "i̇"])
    texts = ["İ AM AN AI", "\u212aEEP IN MIND", "CONFUSIÓN", "İ", None]
    assert (
        m.match(pl.Series(texts)).to_list()
        == [m.naive(t) for t in texts]
        == [["i̇"], ["keep in mind"], ["confusión"], ["i̇"], []]
    )


_ALPHABET = st.sampled_from(
    [
        *"aAbBiIkKsS ._*\\'-",
        "İ",
        "ı",
        "\u212a",
        "ß",
        "ẞ",
        "Σ",
        "σ",
        "ς",
        "ó",
        "Ó",
        "ã",
        "Ã",
        "\u0307",
        "ǅ",
        "\ua7cb",
        "😀",
        "\n",
    ]
)
_FRAGMENTS = st.sampled_from(
    [
        *WIZARDLM.phrases[:40],
        " ESG ",
        "my purpose is to ",
        *BACKSLASH_ENTRIES,
        "unbiased",
        "Kilcher",
        "ia",
        "AS AN AI",
        "confusión",
        "CÓDIGOS",
        "não",
    ]
)
_PIECES = st.one_of(_FRAGMENTS, _FRAGMENTS.map(str.upper), st.text(_ALPHABET, max_size=6))
_TEXTS = st.lists(_PIECES, max_size=8).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    phrases=st.lists(st.one_of(_FRAGMENTS, st.text(_ALPHABET, min_size=1, max_size=4)), min_size=1, max_size=12),
    texts=st.lists(st.one_of(_TEXTS, st.none()), min_size=1, max_size=6),
)
def test_matcher_equals_naive_definition(phrases: list[str], texts: list[str | None]) -> None:
    m = PhraseMatcher(phrases)
    expected = [[p for p in dict.fromkeys(phrases) if p.lower() in (t or "").lower()] for t in texts]
    assert m.match(pl.Series(texts, dtype=pl.String)).to_list() == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), _TEXTS), max_size=6))
def test_lower_exact_is_python_lower(texts: list[str]) -> None:
    assert lower_exact(pl.Series(texts, dtype=pl.String)).to_list() == [t.lower() for t in texts]


# ---------------------------------------------------------------------------------------- the presets


def test_wizardlm_preset_tests_each_assistant_turn_only() -> None:
    f = preset("uncensor_wizardlm")
    assert f.settings["roles"] == ["assistant"] and f.settings["join_turns"] is False
    frame = dialogues(
        [("user", "Is it unethical?"), ("assistant", "Sure, here is how.")],  # the user turn is not tested
        [("user", "hi"), ("assistant", "As an AI language model, I cannot.")],
        [("user", "x"), ("assistant", "my purpose is"), ("user", "y"), ("assistant", "to serve")],  # per turn
        [
            ("user", "Tell me about OpenAssistant"),
            ("assistant", "Made by LAION."),
        ],  # names are StarChat's only
        [],
    )
    got = f.score(frame).get_column("matched_phrases").to_list()
    assert got == [
        [],
        [
            "an AI language",
            "as an AI language model",
            "As an AI",
            "As an AI language model, I cannot",
            "I cannot",
        ],
        ["my purpose"],
        [],
        [],
    ]


def test_starchat_beta_preset_joins_all_turns_with_one_space() -> None:
    f = preset("uncensor_starchat_beta")
    assert f.settings["roles"] == "all" and f.settings["join_turns"] and f.settings["joiner"] == " "
    frame = dialogues(
        [("user", "Is it unethical?"), ("assistant", "Sure, here is how.")],
        [("user", "about"), ("assistant", "ESG"), ("user", "funds")],  # " ESG " only exists across the joins
        [("user", "Who trained you? Open Assistant?"), ("assistant", "Volunteers and LAION.")],
        [("user", "my purpose is"), ("assistant", "to serve")],
    )
    got = f.score(frame).get_column("matched_phrases").to_list()
    assert got == [
        ["ethical", "unethical"],
        [" ESG "],
        ["Open Assistant", "LAION"],
        ["my purpose", "my purpose is to "],
    ]
    joined = [" ".join(m["content"] for m in conv) for conv in frame.get_column("messages").to_list()]
    assert got == [f.matcher.naive(t) for t in joined]


def test_decide_drops_with_reason_and_first_matches_as_evidence() -> None:
    f = preset("uncensor_starchat_beta")
    frame = dialogues(
        [("user", "be unbiased, ethical, not racist, lgbt friendly and responsible AI"), ("assistant", "ok")],
        [("user", "hello"), ("assistant", "hi there")],
    )
    out = apply_filters(frame, [f])
    assert out.kept.get_column("dialogue_id").to_list() == ["d1"]
    row = out.dropped.row(0, named=True)
    assert row["reject_reason"] == "uncensor_phrase"
    assert row["reject_evidence"] == 'matched="racist", "lgbt", "ethical" (+2 more)'
    assert out.counts == {"uncensor_starchat_beta: uncensor_phrase": 1}
    # a threshold-only setting does not change the score fingerprint
    loose = UncensorFilter(FilterSpec(**{**f.spec.to_dict(), "settings": {**f.spec.settings, "evidence_max": 9}}))
    assert loose.score_fingerprint() == f.score_fingerprint()


def test_top_matches_counts_rows_per_phrase() -> None:
    f = preset("uncensor_starchat_beta")
    frame = dialogues(
        [("user", "bias bias bias"), ("assistant", "LAION")],
        [("user", "biases"), ("assistant", "ok")],
        [("user", "fine"), ("assistant", "ok")],
    )
    top = top_matches(f.score(frame), n=2)
    assert top.rows() == [("bias", 2, 2 / 3), ("LAION", 1, 1 / 3)]
    with pytest.raises(SpecError, match="matched_phrases"):
        top_matches(frame)


def test_spec_settings_are_validated(tmp_path: Path) -> None:
    bad = {"name": "u", "filter": "uncensor_phrases", "level": "dialogue"}
    with pytest.raises(SpecError, match="roles"):
        UncensorFilter(FilterSpec(**bad, settings={"roles": "assistant"}))
    with pytest.raises(SpecError, match="phrase list entry"):
        UncensorFilter(FilterSpec(**bad, settings={"phrase_lists": [{"path": "x.json"}]}))
    with pytest.raises(SpecError, match="unknown setting"):
        UncensorFilter(FilterSpec(**bad, settings={"scope": "all"}))
    with pytest.raises(SpecError, match="not found"):
        UncensorFilter(FilterSpec(**bad, settings={"phrase_lists": [str(tmp_path / "nope.json")]}))


def test_phrases_across_turns_are_found_like_in_the_joined_text() -> None:
    """StarChat-beta joins all turns with a space: a phrase may start in one turn and end in the next, or span a
    short turn in between. Turns are matched alone and in windows around each joiner: the same phrases as the
    joined text, in list order."""
    import random

    spec = load_specs(["uncensor_starchat_beta"])[0]
    f = build_filters([spec])[0]
    phrases = [p for p in f.matcher.phrases if " " in p.strip()][:40]
    rng = random.Random(7)
    rows = []
    for _ in range(300):
        turns = []
        for _ in range(rng.randint(1, 5)):
            phrase = rng.choice(phrases)
            cut = rng.randint(0, len(phrase))
            turns += [phrase[:cut].strip() or "ok", phrase[cut:].strip() or "Sure", rng.choice(["", "x", "As an"])]
        turns = turns[: rng.randint(2, len(turns))]
        rows.append([{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)])
    frame = pl.DataFrame({"messages": rows}, schema={"messages": MESSAGES})
    got = f.score(frame).get_column("matched_phrases").to_list()
    want = [f.matcher.naive(" ".join(m["content"] for m in row)) for row in rows]
    assert got == want and sum(map(bool, want)) > 100
