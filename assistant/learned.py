"""The learned parts of understanding: classifiers over the shared embedding, trained at index build.

Why: rules and word lists only know the words somebody here wrote. A classifier over the embedding of
thousands of messages written by others (knowledge/training/) carries to paraphrases nobody listed.

scikit-learn fits the models once per training data and embedder; the fitted parameters are kept as
plain numpy arrays (no pickle) under `data/models/<fingerprint>.npz` and scored with numpy, so a warm
start loads a few arrays and never imports scikit-learn. The texts' vectors are cached beside them,
so changed training data embeds only its new lines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy import sparse
from threadpoolctl import threadpool_limits

from assistant.datafile import DataFileError, Strict, load_yaml
from assistant.embedder import Embedder
from assistant.recent import RECENT_TEXTS, Recent
from assistant.text import letter_counts, normalize, share_of_chinese
from assistant.turn.message import CHINESE_MESSAGE_SHARE, split_sentences

log = logging.getLogger(__name__)

MODELS_VERSION = "svc-rbf-triage+word-ngram-lr+calm-sentences+lr-routing+word-routing+zh-char-ngrams-v5-simplified"
CALM_SENTENCES_FILE = "calm_sentences.txt"
CALM_SENTENCES = 2000  # the hardest sentences of calm messages kept as extra non-emergencies (chosen on dev)
NGRAM_SIZES = (1, 2, 3)
WHITESPACE = re.compile(r"\s\s+")
# Chosen on the dev cases (fewest false alarms at 98% emergency recall, C in 0.5-10, gamma in 1-6); the vectors
# are unit length, so gamma 2 weighs a training message by exp(-4 * (1 - cosine similarity)).
SVC_C = 1.0
SVC_GAMMA = 2.0
ROUTING_C = 2.0  # chosen on the dev cases: the classifier alone hits 85% at 1 on both dev files
# The word model's log-odds are added to the kernel's decision value with this weight (0.1-1.0 tried on the 1,266
# dev cases). At 98% emergency recall on them, false alarms were 8.8% with the kernel alone and 2.1% with the words.
WORDS_WEIGHT = 0.35
WORDS_C = 4.0
# The routing model over the same word features: lay words the embedding blurs into the wrong organ ("eyes gone
# yellow" reads as an eye problem to it) are learned from the routing lines. C chosen on the dev cases (2-32 tried).
ROUTING_WORDS_C = 8.0
# The urgent kernel learns routine from every 4th routing line only: on the 1,586 dev cases it separates
# urgent-or-worse from routine as well (AUC 0.954 against 0.955 with all of them) in a third of the time, which
# keeps training at index build under a minute on two cores. (The emergency kernel keeps every line: with half of
# them its false alarms at 98% recall rose from 15.9% to 18.8% before the rules and the word model.)
URGENT_ROUTING_EVERY = 4
WORD = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token: two or more word characters
Example = TypeVar("Example", bound=BaseModel)


# --- training data ----------------------------------------------------------------------------------
class TriageExample(Strict):
    text: str
    level: Literal["emergency", "urgent", "routine"]
    family: str | None  # None for a read evaluation case: its writer named no family
    kind: Literal["positive", "near_miss", "case"]
    lang: Literal["en", "zh"]


class RoutingExample(Strict):
    text: str
    specialty: str
    also: list[str]
    lang: Literal["en", "zh"]
    style: Literal["symptoms", "story", "diagnosis", "ontology", "case"]
    voice: str


class ReadCaseExpect(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    triage: Literal["emergency", "urgent", "routine"] | None = None
    specialties: list[str] = []


class ReadCase(BaseModel):
    """A case of a blind set that was scored once and read (knowledge/training/cases/, in the evaluation format of
    evals/FORMAT.md): what its writer expected is a label like any training line's. Only the fields learned from
    are read; `python -m evals` validates the rest when it runs the file."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    turns: list[str] = Field(min_length=1)
    expect: ReadCaseExpect = ReadCaseExpect()

    @property
    def text(self) -> str:
        return " ".join(self.turns)

    @property
    def lang(self) -> Literal["en", "zh"]:
        """Read as a message is: an English case that names a hospital in Chinese stays English."""
        return "zh" if share_of_chinese(*letter_counts(self.text)) > CHINESE_MESSAGE_SHARE else "en"


def examples_of_read_cases(cases_dir: Path) -> tuple[list[TriageExample], list[RoutingExample]]:
    """Every read case with a triage label as a triage example, and every one with specialties (its first, the
    writer's best fit, as the label; the rest as `also`) as a routing example."""
    triage: list[TriageExample] = []
    routing: list[RoutingExample] = []
    for path in sorted(cases_dir.glob("*.jsonl")):
        for case in read_jsonl(path, ReadCase):
            expect = case.expect
            if expect.triage is not None:
                triage.append(TriageExample(text=case.text, level=expect.triage, family=None, kind="case",
                                            lang=case.lang))
            if expect.specialties and expect.triage != "emergency":
                routing.append(RoutingExample(text=case.text, specialty=expect.specialties[0],
                                              also=expect.specialties[1:], lang=case.lang, style="case",
                                              voice="case"))
    return triage, routing


def read_jsonl(path: Path, model: type[Example]) -> list[Example]:
    """One validated example per line; a bad line stops the build naming the file, line and field."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            examples.append(model.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as error:
            raise DataFileError(f"{path}:{number}: {str(error).splitlines()[0]}") from error
    return examples


def read_lines(path: Path) -> list[str]:
    """A text file's lines, without blanks and `#` comments; an absent file has none."""
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


class Thresholds(Strict):
    """knowledge/training/thresholds.yaml: decision values chosen on the dev cases for the current models."""

    models: str  # the models' fingerprint these were chosen for
    emergency_message: float
    emergency_sentence: float
    urgent_message: float
    emergency_chinese: float  # the Chinese model's emergency probability
    chosen_on: str
    dev: dict[str, float]


@dataclass(frozen=True)
class TrainingSet:
    triage: list[TriageExample]
    routing: list[RoutingExample]
    alarming: list[str]  # emergencies from the safety files (exemplars)
    calm: list[str]  # routine messages from the safety files (calm exemplars, scope examples)
    calm_sentences: list[str]  # sentences of non-emergency training messages the model took for emergencies
    chinese_signs: list[str]  # the guidance's emergency danger signs in Chinese
    chinese_terms: list[tuple[str, str]]  # the Chinese vocabulary: term and its strongest code

    @classmethod
    def load(cls, knowledge_dir: Path, alarming: Sequence[str] = (), calm: Sequence[str] = (),
             chinese_signs: Sequence[str] = (), chinese_terms: Sequence[tuple[str, str]] = ()) -> TrainingSet:
        training_dir = knowledge_dir / "training"
        case_triage, case_routing = examples_of_read_cases(training_dir / "cases")
        return cls(triage=[*read_jsonl(training_dir / "triage.jsonl", TriageExample), *case_triage],
                   routing=[*read_jsonl(training_dir / "routing.jsonl", RoutingExample), *case_routing],
                   alarming=list(alarming),
                   calm=list(calm), calm_sentences=read_lines(training_dir / CALM_SENTENCES_FILE),
                   chinese_signs=list(chinese_signs), chinese_terms=list(chinese_terms))

    def everyday_words(self, min_count: int = 3) -> set[str]:
        """Words of the training messages written at least `min_count` times: real words, not one writer's typo."""
        counts = Counter(word for example in [*self.triage, *self.routing]
                         for word in re.findall(r"[a-z]+", normalize(example.text)))
        return {word for word, count in counts.items() if count >= min_count}

    def fingerprint(self, embedder_name: str) -> str:
        constants = f"{SVC_C}|{SVC_GAMMA}|{ROUTING_C}|{WORDS_C}|{ROUTING_WORDS_C}|{URGENT_ROUTING_EVERY}"
        digest = hashlib.sha256(f"{MODELS_VERSION}|{embedder_name}|{constants}".encode())
        for example in [*self.triage, *self.routing]:
            digest.update(example.model_dump_json().encode())
        for text in [*self.alarming, "|", *self.calm, "|", *self.calm_sentences, "|", *self.chinese_signs, "|",
                     *(f"{term}={code}" for term, code in self.chinese_terms)]:
            digest.update(text.encode())
        return digest.hexdigest()[:16]


# --- scorers: fitted parameters, scored with numpy --------------------------------------------------
@dataclass(frozen=True)
class KernelScorer:
    """A binary RBF support-vector machine's decision value: above 0 leans positive, higher is surer."""

    support: np.ndarray
    dual: np.ndarray
    intercept: float
    gamma: float

    @cached_property
    def _support_norms(self) -> np.ndarray:
        return (self.support.astype(np.float32) ** 2).sum(1)

    def decision(self, vectors: np.ndarray) -> np.ndarray:
        """Several vectors cost little more than one when scored together, as below: the support rows times the
        vectors' columns is one pass of BLAS over the support (1.7 ms for four vectors here); the vectors' rows
        times the transposed support took 4.2 ms for the same product."""
        vectors = np.atleast_2d(vectors).astype(np.float32)
        products = (self.support @ vectors.T).T
        squared = (vectors**2).sum(1)[:, None] + self._support_norms[None, :] - 2.0 * products
        return np.exp(-self.gamma * np.maximum(squared, 0.0)) @ self.dual + self.intercept


@dataclass(frozen=True)
class LinearScorer:
    """Multinomial logistic regression: a probability per label."""

    labels: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray

    def logits(self, vectors: np.ndarray | sparse.csr_matrix) -> np.ndarray:
        """Embeddings (a row, or one per text) or the sparse rows of `Ngrams.vectors`."""
        rows = vectors if sparse.issparse(vectors) else np.atleast_2d(vectors)
        return np.asarray(rows @ self.coef.T) + self.intercept

    def probabilities(self, vectors: np.ndarray | sparse.csr_matrix) -> np.ndarray:
        logits = self.logits(vectors)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def probability_of(self, label: str, vectors: np.ndarray | sparse.csr_matrix) -> np.ndarray:
        return self.probabilities(vectors)[:, self.labels.index(label)]

    def log_odds(self, vectors: np.ndarray | sparse.csr_matrix) -> np.ndarray:
        """log(p / (1 - p)) of the second label, for a model of two labels."""
        logits = self.logits(vectors)
        return logits[:, 1] - logits[:, 0]

    def best(self, vector: np.ndarray) -> str:
        return self.labels[int(np.argmax(self.probabilities(vector)[0]))]


@dataclass(frozen=True)
class Ngrams:
    """Counts of n-grams weighted by tf-idf and scaled to unit length, computed with numpy as scikit-learn's
    `TfidfVectorizer` computes them, so training and reading agree. Subclasses say what the grams of a text are."""

    grams: tuple[str, ...]
    idf: np.ndarray
    SUBLINEAR: ClassVar[bool] = False  # tf = 1 + log(count), as `sublinear_tf=True`

    @cached_property
    def _index(self) -> dict[str, int]:
        return {gram: i for i, gram in enumerate(self.grams)}

    def grams_of(self, text: str) -> Iterator[str]:
        raise NotImplementedError

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """One sparse row per text: a message has a few dozen of the ~70,000 grams, and a dense row of them all
        cost more than the rest of the word model (scaling, normalising and multiplying zeros)."""
        columns: list[np.ndarray] = []
        values: list[np.ndarray] = []
        for text in texts:
            counts = Counter(column for gram in self.grams_of(text) if (column := self._index.get(gram)) is not None)
            found = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            weights = ((1.0 + np.log(tf)) if self.SUBLINEAR else tf) * self.idf[found]
            norm = np.linalg.norm(weights)
            columns.append(found)
            values.append(weights / norm if norm > 0 else weights)
        starts = np.cumsum([0, *(len(found) for found in columns)])
        return sparse.csr_matrix((np.concatenate([np.zeros(0, np.float32), *values]),
                                  np.concatenate([np.zeros(0, np.int64), *columns]), starts),
                                 shape=(len(texts), len(self.grams)), dtype=np.float32)


@dataclass(frozen=True)
class CharNgrams(Ngrams):
    """Character 1-3-grams: how the learned models read Chinese, which the packaged embedding model cannot (it gives
    Chinese text vectors close to noise). As `TfidfVectorizer(analyzer="char", ngram_range=(1, 3))`."""

    def grams_of(self, text: str) -> Iterator[str]:
        text = WHITESPACE.sub(" ", text.lower())
        for n in NGRAM_SIZES:
            for start in range(len(text) - n + 1):
                yield text[start : start + n]


@dataclass(frozen=True)
class WordNgrams(Ngrams):
    """Word 1-2-grams, sublinear: what the emergency reader learns beside the embedding. The packaged model blurs the
    words that decide ("tonight", "rope", "saved up", "won't wake") into the topic of the sentence; a linear model
    over the words keeps them. As `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)`."""

    SUBLINEAR: ClassVar[bool] = True

    def grams_of(self, text: str) -> Iterator[str]:
        words = WORD.findall(text.lower())
        yield from words
        yield from (f"{first} {second}" for first, second in zip(words, words[1:], strict=False))


@dataclass(frozen=True)
class LearnedModels:
    """English reads the shared embedding; Chinese reads character n-grams (see `CharNgrams`)."""

    fingerprint: str
    emergency: KernelScorer  # emergency vs the rest
    urgent: KernelScorer  # urgent or emergency vs routine
    family: LinearScorer  # which emergency family, to pick the reply (crisis or emergency)
    specialty: LinearScorer  # specialty code from the words of the case
    chinese: CharNgrams  # the features of the two Chinese models below
    chinese_emergency: LinearScorer  # labels ("other", "emergency")
    chinese_specialty: LinearScorer
    words: WordNgrams  # the features of the English word model below
    emergency_words: LinearScorer  # labels (False, True): emergency from the words
    specialty_words: LinearScorer  # specialty code from the words
    seconds: float = 0.0
    trained: bool = False
    # what the kernels said of texts read lately, by the texts read together: a quick reply many people send
    # ("What do I need to bring?") is scored once, and the numbers are those of its first reading
    recent_emergency: Recent[tuple[str, ...], np.ndarray] = field(
        default_factory=lambda: Recent(RECENT_TEXTS), compare=False, repr=False)
    recent_urgent: Recent[str, float] = field(default_factory=lambda: Recent(RECENT_TEXTS), compare=False,
                                              repr=False)

    def emergency_values(self, vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """How sure the English readers are of an emergency, per text (0 is the kernel's boundary): the kernel's
        decision value over the embedding plus the word model's log-odds, weighted. `vectors` are the texts'."""
        key = tuple(texts)
        if (known := self.recent_emergency.get(key)) is not None:
            return known
        words = self.emergency_words.log_odds(self.words.vectors(texts))
        values = self.emergency.decision(vectors) + WORDS_WEIGHT * words
        values.setflags(write=False)  # shared with every later reader of the same texts
        self.recent_emergency.put(key, values)
        return values

    def urgent_value(self, vector: np.ndarray, text: str) -> float:
        """The urgent kernel's decision value for one text (`vector` is its embedding)."""
        if (known := self.recent_urgent.get(text)) is None:
            known = float(self.urgent.decision(vector)[0])
            self.recent_urgent.put(text, known)
        return known

    def chinese_emergency_probability(self, texts: Sequence[str]) -> np.ndarray:
        return self.chinese_emergency.probability_of("emergency", self.chinese.vectors(texts))

    def specialties_from_words(self, text: str) -> np.ndarray:
        return self.specialty_words.probabilities(self.words.vectors([text]))[0]

    def chinese_specialties(self, text: str) -> np.ndarray:
        return self.chinese_specialty.probabilities(self.chinese.vectors([text]))[0]

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"fingerprint": np.array(self.fingerprint)}
        for name in ("emergency", "urgent"):
            scorer: KernelScorer = getattr(self, name)
            arrays |= {f"{name}.support": scorer.support, f"{name}.dual": scorer.dual,
                       f"{name}.intercept": np.array(scorer.intercept), f"{name}.gamma": np.array(scorer.gamma)}
        arrays |= {"chinese.grams": np.array(self.chinese.grams), "chinese.idf": self.chinese.idf,
                   "words.grams": np.array(self.words.grams), "words.idf": self.words.idf}
        for name in ("family", "specialty", "chinese_emergency", "chinese_specialty", "emergency_words",
                     "specialty_words"):
            linear: LinearScorer = getattr(self, name)
            arrays |= {f"{name}.labels": np.array(linear.labels), f"{name}.coef": linear.coef,
                       f"{name}.intercept": linear.intercept}
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        partial.replace(path)  # a crash mid-write never leaves a half file under the real name

    @classmethod
    def load(cls, path: Path) -> LearnedModels:
        with np.load(path, allow_pickle=False) as data:
            def kernel(name: str) -> KernelScorer:
                return KernelScorer(data[f"{name}.support"], data[f"{name}.dual"],
                                    float(data[f"{name}.intercept"]), float(data[f"{name}.gamma"]))

            def linear(name: str) -> LinearScorer:
                return LinearScorer(tuple(str(label) for label in data[f"{name}.labels"]), data[f"{name}.coef"],
                                    data[f"{name}.intercept"])

            chinese = CharNgrams(tuple(str(gram) for gram in data["chinese.grams"]), data["chinese.idf"])
            words = WordNgrams(tuple(str(gram) for gram in data["words.grams"]), data["words.idf"])
            return cls(str(data["fingerprint"]), kernel("emergency"), kernel("urgent"), linear("family"),
                       linear("specialty"), chinese, linear("chinese_emergency"), linear("chinese_specialty"),
                       words, linear("emergency_words"), linear("specialty_words"))


# --- training ---------------------------------------------------------------------------------------
class VectorCache:
    """Vectors of training texts, per embedder, kept as 8-bit integers with one scale per vector (training rounds
    fresh ones the same way, so a cached and a fresh vector train the same model; cosines move by ~1e-3), each
    found by a 64-bit hash of its text (the texts themselves are in the training files).

    Embedding the ~10,800 training texts takes about three minutes on two cores, so the vectors for the packaged
    model ship beside the data (`knowledge/training/vectors-<model>.npz`, refreshed by
    `python -m assistant vectors`); anything they lack is embedded once and kept under `data/models/`."""

    def __init__(self, shipped: Path, local: Path, embedder: Embedder) -> None:
        self.shipped = shipped
        self.local = local
        self.embedder = embedder
        self.vectors: dict[int, np.ndarray] = {**self._read(shipped), **self._read(local)}

    @staticmethod
    def _read(path: Path) -> dict[int, np.ndarray]:
        if not path.exists():
            return {}
        try:
            with np.load(path, allow_pickle=False) as data:
                vectors = _from_bytes(data["vectors"], data["scales"])
                return dict(zip(data["hashes"].tolist(), vectors, strict=True))
        except (OSError, ValueError, KeyError):
            log.warning("training vector cache %s is unreadable: embedding again", path)
            return {}

    def embed(self, texts: list[str]) -> np.ndarray:
        keys = [_text_hash(text) for text in texts]
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in self.vectors}
        if missing:
            fresh = _from_bytes(*_to_bytes(self.embedder.embed(list(missing.values()))))
            self.vectors.update(zip(missing, fresh, strict=True))
            self.save(self.local)
        return np.stack([self.vectors[key] for key in keys])

    def shipped_lacks(self, texts: Sequence[str]) -> list[str]:
        """Texts without a vector in the shipped file: a fresh clone would embed them at build."""
        shipped = self._read(self.shipped)
        return [text for text in dict.fromkeys(texts) if _text_hash(text) not in shipped]

    def save(self, path: Path, only: list[str] | None = None) -> None:
        keys = list(dict.fromkeys(_text_hash(text) for text in only)) if only is not None else list(self.vectors)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        quantized, scales = _to_bytes(np.stack([self.vectors[key] for key in keys]))
        np.savez_compressed(partial, hashes=np.array(keys, dtype=np.uint64), vectors=quantized, scales=scales)
        partial.replace(path)


def _text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _to_bytes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scales = np.maximum(np.abs(vectors).max(axis=1), 1e-12).astype(np.float32)
    return np.round(vectors / scales[:, None] * 127).astype(np.int8), scales


def _from_bytes(quantized: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return quantized.astype(np.float32) * (scales[:, None] / 127)


def _kernel(vectors: np.ndarray, labels: np.ndarray) -> KernelScorer:
    from sklearn.svm import SVC

    model = SVC(C=SVC_C, kernel="rbf", gamma=SVC_GAMMA, class_weight="balanced", cache_size=2000).fit(vectors, labels)
    return KernelScorer(model.support_vectors_.astype(np.float32), model.dual_coef_[0].astype(np.float32),
                        float(model.intercept_[0]), SVC_GAMMA)


def _linear(vectors: np.ndarray, labels: list[str], c: float, balanced: bool = False) -> LinearScorer:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None).fit(vectors, labels)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one row for two classes: as two rows, softmax gives the same sigmoid
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    return LinearScorer(tuple(str(label) for label in model.classes_), coef.astype(np.float32),
                        intercept.astype(np.float32))


def _char_ngrams(texts: list[str]) -> tuple[CharNgrams, object]:
    """The features and the texts' sparse matrix (the solver is several times faster on it than on a dense one)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(min(NGRAM_SIZES), max(NGRAM_SIZES)), min_df=2,
                                 dtype=np.float32)
    matrix = vectorizer.fit_transform(texts)
    grams = tuple(str(gram) for gram in vectorizer.get_feature_names_out())
    return CharNgrams(grams, vectorizer.idf_.astype(np.float32)), matrix.tocsr()


def fit_word_ngrams(texts: list[str]) -> tuple[WordNgrams, object]:
    """The features and the texts' sparse matrix (dense, 14,000 texts by 40,000 grams would take 2 GB)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32)
    matrix = vectorizer.fit_transform(texts)
    grams = tuple(str(gram) for gram in vectorizer.get_feature_names_out())
    return WordNgrams(grams, vectorizer.idf_.astype(np.float32)), matrix


def texts_by_part(training: TrainingSet) -> tuple[list[str], list[str], list[str], list[str]]:
    """The normalised texts the embedding models learn from: triage lines, routing lines, the safety files', and
    the calm sentences."""
    return ([normalize(example.text) for example in training.triage],
            [normalize(example.text) for example in training.routing],
            [normalize(text) for text in [*training.alarming, *training.calm]],
            [normalize(text) for text in training.calm_sentences])


def all_texts(training: TrainingSet) -> list[str]:
    return [text for part in texts_by_part(training) for text in part]


def vector_cache(knowledge_dir: Path, models_dir: Path, embedder: Embedder) -> VectorCache:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", embedder.name)
    return VectorCache(knowledge_dir / "training" / f"vectors-{name}.npz", models_dir / f"vectors-{name}.npz",
                       embedder)


def _message_rows(training: TrainingSet, cache: VectorCache) -> tuple[np.ndarray, np.ndarray]:
    """Every training message's vector and triage level: the triage lines, plus every routing line and scope
    example as routine (the ordinary messages this product gets), but a read case's routing row keeps its level."""
    triage_texts, routing_texts, extra_texts, _ = texts_by_part(training)
    vectors = cache.embed([*triage_texts, *routing_texts, *extra_texts])
    read_case_levels = {example.text: example.level for example in training.triage if example.kind == "case"}
    levels = ([example.level for example in training.triage]
              + [read_case_levels.get(example.text, "routine") for example in training.routing]
              + ["emergency"] * len(training.alarming) + ["routine"] * len(training.calm))
    return vectors, np.array(levels)


def mine_calm_sentences(training: TrainingSet, cache: VectorCache, alarming: Callable[[str], bool],
                        keep: int = CALM_SENTENCES) -> list[str]:
    """The sentences of non-emergency training messages that an emergency model trained without them scores
    highest: background, ruled-out signs ("no chest pain") and worries that made calm stories look like
    emergencies. A sentence with a danger sign the rules know, now or past ("he fell from a roof and can't move his
    legs", from a rehabilitation story; "chest pain" alone), is calm only in its story, so it is never taught as
    calm; a ruled-out sign ("no chest pain") is. Learning them cut false
    alarms at 98% recall on the dev cases from 8.1% to 4.7%. `python -m assistant vectors` writes them to
    `calm_sentences.txt`."""
    vectors, levels = _message_rows(training, cache)
    model = _kernel(vectors, levels == "emergency")
    calm_messages = [*(normalize(e.text) for e in training.triage if e.level != "emergency"),
                     *(normalize(e.text) for e in training.routing)]
    sentences = sorted({sentence for text in calm_messages if len(split := split_sentences(text)) > 1
                        for sentence in split})
    sentence_vectors = cache.embed(sentences)
    scores = np.concatenate([model.decision(sentence_vectors[start:start + 1000])
                             for start in range(0, len(sentences), 1000)])
    chosen: list[str] = []
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) == keep:
            break
        if not alarming(sentences[i]):
            chosen.append(sentences[i])
    return chosen


def train(training: TrainingSet, cache: VectorCache, fingerprint: str) -> LearnedModels:
    """Triage learns every message's level, and the calm sentences as non-emergencies (the sentence-level reading
    needs them); routing learns the specialty of each routing line."""
    started = time.perf_counter()
    triage_texts, routing_texts, extra_texts, calm_sentences = texts_by_part(training)
    everything, all_levels = _message_rows(training, cache)
    calm_vectors = cache.embed(calm_sentences) if calm_sentences else np.zeros((0, everything.shape[1]), np.float32)
    is_emergency = np.concatenate([all_levels == "emergency", np.zeros(len(calm_sentences), bool)])
    routing_part = np.arange(len(triage_texts), len(triage_texts) + len(routing_texts))
    urgent_rows = np.ones(len(everything), bool)  # every row but three routing lines in four
    urgent_rows[routing_part] = np.arange(len(routing_part)) % URGENT_ROUTING_EVERY == 0
    # the emergency kernel takes most of the time and libsvm lets go of the GIL: it fits on one core while the
    # other fits everything else, with BLAS held to one thread so the two do not fight (55.7 s -> 48.4 s here)
    with threadpool_limits(1), ThreadPoolExecutor(max_workers=1) as pool:
        emergency_fit = pool.submit(_kernel, np.vstack([everything, calm_vectors]), is_emergency)
        urgent = _kernel(everything[urgent_rows], all_levels[urgent_rows] != "routine")
        words, matrix = fit_word_ngrams([*triage_texts, *routing_texts, *extra_texts, *calm_sentences])
        emergency_words = _linear(matrix, [str(label) for label in is_emergency], WORDS_C, balanced=True)
        specialty_words = _linear(matrix[routing_part], [example.specialty for example in training.routing],
                                  ROUTING_WORDS_C)
        triage_vectors, routing_vectors = everything[: len(triage_texts)], everything[routing_part]
        positives = [i for i, example in enumerate(training.triage)
                     if example.level == "emergency" and example.kind == "positive"]
        family = _linear(triage_vectors[positives], [training.triage[i].family for i in positives], 4.0)
        specialty = _linear(routing_vectors, [example.specialty for example in training.routing], ROUTING_C)
        chinese, chinese_emergency, chinese_specialty = _train_chinese(training)
        emergency = emergency_fit.result()
    return LearnedModels(fingerprint, emergency, urgent, family, specialty, chinese, chinese_emergency,
                         chinese_specialty, words, emergency_words, specialty_words,
                         seconds=time.perf_counter() - started, trained=True)


def _train_chinese(training: TrainingSet) -> tuple[CharNgrams, LinearScorer, LinearScorer]:
    """Chinese lines of the training data, the guidance's Chinese danger signs and the Chinese vocabulary."""
    triage = [(normalize(e.text), e.level == "emergency") for e in training.triage if e.lang == "zh"]
    triage += [(normalize(sign), True) for sign in training.chinese_signs]
    routing = [(normalize(e.text), e.specialty) for e in training.routing if e.lang == "zh"]
    routing += [(normalize(term), code) for term, code in training.chinese_terms]
    features, matrix = _char_ngrams([text for text, _ in triage] + [text for text, _ in routing])
    triage_rows, routing_rows = matrix[: len(triage)], matrix[len(triage) :]
    emergency = _linear(triage_rows, ["emergency" if alarm else "other" for _, alarm in triage], 4.0, balanced=True)
    specialty = _linear(routing_rows, [code for _, code in routing], 8.0)
    return features, emergency, specialty


_FITTED_IN_THIS_PROCESS: dict[str, LearnedModels] = {}


def load_or_train(training: TrainingSet, knowledge_dir: Path, models_dir: Path, embedder: Embedder) -> LearnedModels:
    """The models for this training data and embedder: from `models_dir` when they exist, else fitted now (once per
    process: engines over other data directories, as tests build, share them)."""
    fingerprint = training.fingerprint(embedder.name)
    path = models_dir / f"models-{fingerprint}.npz"
    if not path.exists() and fingerprint in _FITTED_IN_THIS_PROCESS:
        _FITTED_IN_THIS_PROCESS[fingerprint].save(path)
    if path.exists():
        try:
            return LearnedModels.load(path)
        except (OSError, ValueError, KeyError):
            log.warning("models file %s is unreadable: training again", path)
    cache = vector_cache(knowledge_dir, models_dir, embedder)
    models = train(training, cache, fingerprint)
    models.save(path)
    _FITTED_IN_THIS_PROCESS[fingerprint] = models
    for old in models_dir.glob("models-*.npz"):
        if old != path:
            old.unlink(missing_ok=True)
    log.info("trained the triage and routing models in %.1fs", models.seconds)
    return models


def load_thresholds(knowledge_dir: Path) -> Thresholds:
    return load_yaml(knowledge_dir / "training" / "thresholds.yaml", Thresholds)
