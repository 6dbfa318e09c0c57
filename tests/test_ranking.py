"""Ranking specifications: for a message, which departments come first.

Each test reads as a sentence about the product. They run on the real knowledge base, the real
packaged model and a real Chroma index in a temp dir.
"""

from __future__ import annotations

import pytest

from assistant.reply import Recommendation


@pytest.fixture(scope="module")
def rank(engine):
    def ranked(text: str, hospital: str | None = None) -> list[Recommendation]:
        return engine.match(text, hospital).recommendations

    return ranked


def hospitals(candidates: list[Recommendation], n: int = 3) -> list[str]:
    return [c.hospital_id for c in candidates[:n]]


def codes(candidate: Recommendation) -> set[str]:
    return set(candidate.specialties)


def first_code_in(candidates: list[Recommendation], *wanted: str) -> bool:
    return bool(codes(candidates[0]) & set(wanted))


# --- the four seed stories --------------------------------------------------------------------

def test_relapsed_myeloma_ranks_ruijin_hematology_first(rank):
    top = rank("I'm 62 and my multiple myeloma has relapsed twice; I'm looking for CAR-T")
    assert top[0].hospital_id == "ruijin" and "hematology" in codes(top[0])


def test_biliary_atresia_in_infant_ranks_renji_pediatric_transplant(rank):
    top = rank("my 8 month old daughter has biliary atresia and the doctors say she needs a liver transplant")
    assert top[0].hospital_id == "renji" and "pediatric_transplant" in codes(top[0])


def test_glioma_surgery_ranks_huashan_neurosurgery_in_the_top_two(rank):
    top = rank("I'm 45 and was diagnosed with a glioma; I want neurosurgery")
    assert "huashan" in hospitals(top, 2)
    assert any("neurosurgery" in codes(c) for c in top[:2])


def test_thalassemia_gene_therapy_for_a_child_ranks_fudan_childrens_first(rank):
    top = rank("my 4 year old daughter has beta thalassemia and needs transfusions every month; gene editing?")
    assert top[0].hospital_id == "fudan_childrens"
    assert "pediatric_hematology_oncology" in codes(top[0])


# --- children never get adult-only departments ------------------------------------------------

def test_child_with_leukemia_never_gets_adult_hematology(rank):
    top = rank("my 6 year old son has acute lymphoblastic leukemia")
    assert all(c.hospital_id in ("scmc", "fudan_childrens", "xinhua", "renji", "ruijin") for c in top[:3])
    assert all("hematology" not in codes(c) or "pediatric_hematology_oncology" in codes(c) for c in top)
    assert first_code_in(top, "pediatric_hematology_oncology")


def test_a_teenagers_acne_goes_to_an_adult_skin_clinic_a_young_childs_to_a_childrens_department(rank, kb):
    teenager = rank("I'm 16 and my acne is really bad, painful lumps on my chin and back, the creams did nothing")
    assert teenager[0].specialties[0] == "dermatology"
    assert kb.departments[teenager[0].department_id].audience in ("adult", "both")
    child = rank("my son is 6 and has eczema on his face and arms")
    assert all(kb.departments[c.department_id].audience != "adult" for c in child)


def test_child_with_congenital_heart_disease_ranks_pediatric_cardiology(rank):
    top = rank("our 2 year old has tetralogy of fallot and needs heart surgery")
    assert first_code_in(top, "pediatric_cardiology")
    assert top[0].hospital_id in ("scmc", "fudan_childrens", "xinhua")


def test_newborn_born_early_ranks_neonatology(rank):
    top = rank("our baby was born at 28 weeks, premature, needs intensive care")
    assert first_code_in(top, "neonatology")


def test_child_with_epilepsy_ranks_pediatric_neurology(rank):
    top = rank("my 9 year old son has epilepsy that medication does not control")
    assert first_code_in(top, "pediatric_neurology")


def test_adult_with_epilepsy_never_gets_a_childrens_department(rank):
    top = rank("I'm 34 and have drug-resistant epilepsy")
    assert all(c.hospital_id not in ("fudan_childrens", "scmc") for c in top)
    assert first_code_in(top, "neurology", "neurosurgery")


def test_child_needing_abdominal_surgery_ranks_pediatric_surgery(rank):
    top = rank("my 3 year old has hirschsprung disease and needs an operation")
    assert first_code_in(top, "pediatric_surgery")


# --- the widget ---------------------------------------------------------------------------------

def test_widget_scoped_to_huashan_returns_only_huashan(rank):
    top = rank("I have a brain tumour and want surgery", hospital="huashan")
    assert top and {c.hospital_id for c in top} == {"huashan"}


def test_widget_scoped_to_renji_ranks_its_pediatric_liver_transplant_first(rank):
    top = rank("my baby has biliary atresia", hospital="renji")
    assert top[0].department_id.startswith("renji/") and "pediatric_transplant" in codes(top[0])


def test_widget_scope_still_never_gives_a_child_an_adult_department(rank, kb):
    top = rank("my 5 year old has a brain tumour", hospital="huashan")
    assert all(kb.department(c.department_id).audience != "adult" for c in top)


# --- one per hospital in the top three ------------------------------------------------------------

def test_the_top_three_come_from_three_different_hospitals(rank):
    top = rank("I have rheumatoid arthritis and want a specialist")
    assert len(set(hospitals(top))) == 3


# --- every specialty family -----------------------------------------------------------------------

def test_lung_cancer_ranks_an_oncology_or_thoracic_department_first(rank):
    top = rank("I'm 58 with non-small cell lung cancer, EGFR positive, looking for treatment")
    assert first_code_in(top, "medical_oncology", "thoracic_surgery")


def test_breast_cancer_second_opinion_ranks_fuscc_in_the_top_three(rank):
    assert "fuscc" in hospitals(rank("I'm 47 with breast cancer and want a second opinion on chemotherapy"))


def test_proton_therapy_ranks_a_radiation_oncology_department_first(rank):
    top = rank("I'm 60 and want proton therapy for my prostate cancer")
    assert first_code_in(top, "radiation_oncology")


def test_heavy_ion_therapy_ranks_sphic_first(rank):
    assert rank("is heavy ion therapy possible for my chordoma? I'm 50")[0].hospital_id == "sphic"


def test_lung_nodule_surgery_ranks_thoracic_surgery(rank):
    top = rank("CT found a 2 cm lung nodule, I'm 55, they suggest surgery")
    assert first_code_in(top, "thoracic_surgery")
    assert "chest_hospital" in hospitals(top)


def test_coronary_disease_ranks_cardiology_at_zhongshan_in_the_top_three(rank):
    top = rank("I'm 66 with coronary artery disease and angina, may need a stent")
    assert first_code_in(top, "cardiology") and "zhongshan" in hospitals(top)


def test_heart_valve_replacement_ranks_cardiac_surgery(rank):
    assert first_code_in(rank("I'm 70 and need aortic valve replacement surgery"), "cardiac_surgery", "cardiology")


def test_crohns_disease_ranks_gastroenterology(rank):
    top = rank("I'm 29 with Crohn's disease not responding to biologics")
    assert first_code_in(top, "gastroenterology") and "renji" in hospitals(top)


def test_hepatitis_b_cirrhosis_ranks_hepatology(rank):
    assert first_code_in(rank("I'm 52 with hepatitis B and cirrhosis"), "hepatology", "infectious_disease")


def test_adult_liver_transplant_ranks_an_adult_transplant_department(rank):
    top = rank("I'm 57 with end-stage liver disease and need a liver transplant")
    assert first_code_in(top, "transplant")
    assert "pediatric_transplant" not in codes(top[0])


def test_kidney_failure_on_dialysis_ranks_nephrology_or_transplant(rank):
    assert first_code_in(rank("I'm 48, my kidneys failed and I'm on dialysis"), "nephrology", "transplant")


def test_kidney_stones_rank_urology(rank):
    assert first_code_in(rank("I'm 41 with recurrent kidney stones"), "urology")


def test_type_2_diabetes_ranks_endocrinology(rank):
    assert first_code_in(rank("I'm 55 and my type 2 diabetes is poorly controlled"), "endocrinology")


def test_lupus_ranks_rheumatology_with_renji_in_the_top_three(rank):
    top = rank("I'm 33 with lupus nephritis")
    assert first_code_in(top, "rheumatology", "nephrology") and "renji" in hospitals(top)


def test_hiv_ranks_infectious_disease_at_huashan(rank):
    top = rank("I'm 38 and HIV positive, looking for an infectious disease specialist")
    assert first_code_in(top, "infectious_disease") and top[0].hospital_id == "huashan"


def test_psoriasis_ranks_huashan_dermatology(rank):
    top = rank("I'm 30 with severe psoriasis")
    assert first_code_in(top, "dermatology") and "huashan" in hospitals(top)


def test_cataract_ranks_ophthalmology_at_eent(rank):
    top = rank("I'm 72 with cataracts in both eyes")
    assert first_code_in(top, "ophthalmology") and "eent" in hospitals(top)


def test_hearing_loss_and_cochlear_implant_ranks_eent_otolaryngology_first(rank):
    top = rank("I'm 40 with severe hearing loss and want a cochlear implant")
    assert top[0].hospital_id == "eent" and first_code_in(top, "otolaryngology")


def test_dental_implants_rank_stomatology_at_ninth_peoples(rank):
    top = rank("I'm 50 and need dental implants")
    assert first_code_in(top, "stomatology") and "ninth_peoples" in hospitals(top)


def test_hip_replacement_ranks_orthopedics_with_sixth_peoples_in_the_top_three(rank):
    top = rank("I'm 67 and need a hip replacement")
    assert first_code_in(top, "orthopedics") and "sixth_peoples" in hospitals(top)


def test_torn_acl_ranks_sports_medicine(rank):
    assert first_code_in(rank("I'm 26 and tore my ACL playing football"), "sports_medicine", "orthopedics")


def test_endometriosis_ranks_gynecology(rank):
    assert first_code_in(rank("I'm 34 with endometriosis and pelvic pain"), "gynecology")


def test_high_risk_pregnancy_ranks_obstetrics(rank):
    assert first_code_in(rank("I'm 39 and pregnant with twins, a high-risk pregnancy"), "obstetrics")


def test_ivf_ranks_reproductive_medicine(rank):
    assert first_code_in(rank("we have been trying for a baby for 4 years and want IVF"), "reproductive_medicine")


def test_burn_scar_reconstruction_ranks_plastic_surgery(rank):
    assert first_code_in(rank("I'm 28 with burn scars on my face and want reconstruction"), "plastic_surgery")


def test_depression_ranks_psychiatry_at_the_mental_health_center(rank):
    top = rank("I'm 31 and have had depression and anxiety for years; I want treatment")
    assert first_code_in(top, "psychiatry") and top[0].hospital_id == "mental_health_center"


def test_stroke_rehabilitation_ranks_rehabilitation(rank):
    assert first_code_in(rank("I had a stroke last year, I'm 64, and want rehabilitation"), "rehabilitation")


def test_acupuncture_ranks_traditional_chinese_medicine(rank):
    top = rank("I'm 45 and want acupuncture and herbal medicine for chronic back pain")
    assert first_code_in(top, "traditional_chinese_medicine")


def test_full_body_checkup_ranks_health_checkup(rank):
    assert first_code_in(rank("I'm 50 and want a full health check-up with MRI"), "health_checkup")


def test_asthma_in_an_adult_ranks_pulmonology(rank):
    assert first_code_in(rank("I'm 44 with severe asthma and COPD"), "pulmonology")


def test_thyroid_nodule_surgery_ranks_general_surgery_or_endocrinology(rank):
    assert first_code_in(rank("I'm 37 with a thyroid nodule that needs surgery"), "general_surgery", "endocrinology")


def test_parkinsons_ranks_neurology(rank):
    top = rank("I'm 68 with Parkinson's disease")
    assert first_code_in(top, "neurology", "neurosurgery") and "huashan" in hospitals(top)


# --- negation, abbreviations, lay words, Chinese -----------------------------------------------

def test_negated_condition_does_not_drive_the_ranking(rank):
    top = rank("I'm 50, no diabetes and no heart problems, but I have kidney stones")
    assert first_code_in(top, "urology")


def test_the_abbreviation_dlbcl_ranks_hematology(rank):
    assert first_code_in(rank("I'm 55 with relapsed DLBCL"), "hematology")


def test_the_abbreviation_gbm_ranks_neurosurgery(rank):
    assert first_code_in(rank("I'm 49, diagnosed with GBM"), "neurosurgery", "radiation_oncology", "medical_oncology")


def test_lay_words_knee_gives_way_rank_sports_medicine_or_orthopedics(rank):
    assert first_code_in(rank("I'm 30 and my knee gives way when I turn"), "sports_medicine", "orthopedics")


def test_lay_words_yellow_eyes_rank_a_liver_department(rank):
    assert first_code_in(rank("I'm 45 and my eyes have gone yellow"), "hepatology", "gastroenterology",
                         "infectious_disease", "general_surgery")


def test_lay_words_cant_hold_urine_rank_urology_or_gynecology(rank):
    assert first_code_in(rank("I'm 60 and I can't hold my urine"), "urology", "gynecology")


def test_chinese_myeloma_ranks_ruijin_hematology(rank):
    top = rank("我爸爸68岁，多发性骨髓瘤复发了")
    assert top[0].hospital_id == "ruijin" and "hematology" in codes(top[0])


def test_chinese_biliary_atresia_ranks_renji(rank):
    top = rank("我女儿6个月大，胆道闭锁，需要肝移植")
    assert top[0].hospital_id == "renji"


def test_every_candidate_has_a_why_and_sourced_evidence(rank, kb):
    for candidate in rank("I'm 62 and my multiple myeloma relapsed"):
        assert candidate.why.endswith(".")
        assert candidate.evidence and all(item.source_id in kb.sources for item in candidate.evidence)


def card(hospital: str, code: str, score: float) -> Recommendation:
    return Recommendation(hospital_id=hospital, department_id=f"{hospital}/{code}", specialties=[code], score=score,
                          why="", evidence=[])


def shown(cards: list[Recommendation]) -> list[str]:
    return [c.specialties[0] for c in cards[:3]]


def test_nearly_as_likely_specialties_get_the_later_cards() -> None:
    from assistant.retrieval.match import likely_specialties, with_likely_specialties

    ranked = [card("ruijin", "cardiology", 3.0), card("zhongshan", "cardiology", 2.9),
              card("renji", "cardiology", 2.8), card("huashan", "nephrology", 2.0), card("xinhua", "urology", 1.0)]
    scores = {"cardiology": 1.0, "nephrology": 0.6, "urology": 0.55, "neurology": 0.2}
    one = with_likely_specialties(ranked, likely_specialties(scores, "cardiology", 0.58, 2), ranked)
    assert shown(one) == ["cardiology", "cardiology", "nephrology"]
    assert len(one) == 5 and one[3].hospital_id == "renji"  # moved down, not dropped
    two = with_likely_specialties(ranked, likely_specialties(scores, "cardiology", 0.5, 2), ranked)
    assert shown(two) == ["cardiology", "nephrology", "urology"]
    named = {"cardiology": 1.0, "nephrology": 0.3}  # a named diagnosis leaves the others far behind
    assert with_likely_specialties(ranked, likely_specialties(named, "cardiology", 0.5, 2), ranked) == ranked


def test_a_likely_specialty_below_the_relevance_floor_still_gets_a_card() -> None:
    from assistant.retrieval.match import with_likely_specialties

    above_floor = [card("ruijin", "cardiology", 3.0)]
    pool = [*above_floor, card("huashan", "nephrology", 1.2)]
    assert shown(with_likely_specialties(above_floor, ["nephrology"], pool)) == ["cardiology", "nephrology"]
