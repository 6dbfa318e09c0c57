"""The classifiers over the shared embedding: trained from data files, kept as plain arrays, tuned on dev only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.datafile import DataFileError
from assistant.learned import (
    WORDS_WEIGHT,
    KernelScorer,
    LearnedModels,
    TriageExample,
    all_texts,
    fit_word_ngrams,
    load_thresholds,
    read_jsonl,
    vector_cache,
)
from assistant.settings import PROJECT_ROOT


def test_the_numpy_scorer_gives_what_scikit_learn_fitted() -> None:
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(200, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = vectors[:, 0] + 0.3 * vectors[:, 1] > 0
    model = SVC(C=1.0, kernel="rbf", gamma=2.0).fit(vectors, labels)
    scorer = KernelScorer(model.support_vectors_, model.dual_coef_[0], float(model.intercept_[0]), 2.0)
    assert np.allclose(scorer.decision(vectors), model.decision_function(vectors), atol=1e-4)


def test_the_word_features_are_the_ones_scikit_learn_trained_on() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = ["i took 30 pills tonight", "the pills are fine", "chest pain and sweating", "no chest pain"] * 2
    words, _ = fit_word_ngrams(texts)
    probe = ["I took 30 pills, and chest pain pain!", "nothing known here"]
    fitted = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float32).fit(texts)
    assert np.allclose(words.vectors(probe).toarray(), fitted.transform(probe).toarray(), atol=1e-6)


def test_saved_models_load_as_the_same_scores(fake_engine, tmp_path: Path) -> None:
    models = fake_engine.models
    models.save(tmp_path / "models.npz")
    loaded = LearnedModels.load(tmp_path / "models.npz")
    texts = ["crushing chest pain and sweating", "knee replacement in Shanghai"]
    probe = fake_engine.embedder.embed(texts)
    assert loaded.fingerprint == models.fingerprint
    assert np.allclose(loaded.emergency_values(probe, texts), models.emergency_values(probe, texts))
    assert np.allclose(loaded.specialty.probabilities(probe), models.specialty.probabilities(probe))
    assert np.allclose(loaded.specialties_from_words(texts[1]), models.specialties_from_words(texts[1]))
    assert loaded.family.labels == models.family.labels


def test_the_word_routing_model_reads_lay_words_the_embedding_blurs(engine) -> None:
    """The embedding reads "my eyes have gone yellow" as an eye problem; the routing lines teach the words."""
    models = engine.models
    probabilities = models.specialties_from_words("im 45 and my eyes have gone yellow")
    assert models.specialty_words.labels[int(probabilities.argmax())] in ("hepatology", "gastroenterology")


def test_a_bad_training_line_stops_the_build_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "triage.jsonl"
    good = {"text": "my chest hurts", "level": "emergency", "family": "chest", "kind": "positive", "lang": "en"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "level": "soon"}) + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"triage.jsonl:2: "):
        read_jsonl(path, TriageExample)


def test_the_thresholds_were_chosen_for_the_models_in_use(engine) -> None:
    """Changed training data trains other models: their thresholds must be chosen again (`python -m evals tune`)."""
    assert load_thresholds(PROJECT_ROOT / "knowledge").models == engine.models.fingerprint


def test_the_shipped_vectors_cover_every_training_text(engine) -> None:
    """A fresh clone trains in seconds only if no training text needs embedding (`python -m assistant vectors`)."""
    from assistant.build import training_set

    texts = set(all_texts(training_set(engine.settings, engine.safety, engine.kb)))
    cache = vector_cache(engine.settings.knowledge_dir, engine.settings.models_dir, engine.embedder)
    lacking = cache.shipped_lacks(sorted(texts))
    assert not lacking, f"{len(lacking)} training texts lack shipped vectors, e.g. {lacking[:2]}"


def test_calm_sentences_come_from_calm_messages_and_no_rule_calls_one_an_emergency(engine) -> None:
    """A sentence taught as calm holds no danger sign the rules know, and no rule or number calls it an emergency."""
    from assistant.build import training_set
    from assistant.text import normalize

    training = training_set(engine.settings, engine.safety, engine.kb)
    calm_messages = " ".join(normalize(e.text) for e in [*training.triage, *training.routing]
                             if getattr(e, "level", "routine") != "emergency")
    assert len(training.calm_sentences) >= 1000
    engine.embedder.embed(training.calm_sentences)  # in the model's batches: each reading below finds its vector
    for sentence in training.calm_sentences:
        assert sentence in calm_messages
        assert not engine.safety.danger_words(sentence), sentence
        triage = engine.safety.triage(engine.read(sentence))
        assert not (triage.is_emergency and triage.via in ("rule", "number")), sentence


def test_texts_read_again_get_the_numbers_of_their_first_reading_without_another_pass(fake_engine) -> None:
    """Quick replies come word for word from many people: the kernels' values for the same texts are remembered,
    and nobody can change the remembered numbers through the array they were handed."""
    models = fake_engine.models
    texts = ["what do i need to bring?", "he has chest pain"]
    vectors = fake_engine.embedder.embed(texts)
    first = models.emergency_values(vectors, texts)
    assert models.emergency_values(vectors, texts) is first
    assert not first.flags.writeable
    assert np.allclose(first, models.emergency.decision(vectors) + WORDS_WEIGHT * models.emergency_words.log_odds(
        models.words.vectors(texts)))
    urgent = models.urgent_value(vectors[0], texts[0])
    assert urgent == float(models.urgent.decision(vectors[0])[0]) and models.recent_urgent.get(texts[0]) == urgent
