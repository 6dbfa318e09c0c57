"""Numbers decide on their own: vital signs read from a message and held against the published thresholds."""

from __future__ import annotations

import pytest

from assistant.datafile import load_yaml
from assistant.settings import PROJECT_ROOT
from assistant.text import normalize
from assistant.turn.vitals import VitalThresholds, read_vitals

GUIDANCE = PROJECT_ROOT / "knowledge" / "safety" / "guidance.yaml"


@pytest.fixture(scope="module")
def thresholds() -> VitalThresholds:
    from assistant.turn.safety import Guidance

    return load_yaml(GUIDANCE, Guidance).thresholds


@pytest.mark.parametrize(("text", "measure", "value"), [
    ("sats 86% on room air", "spo2", 86),
    ("oxygen level is down to 88", "spo2", 88),
    ("my finger monitor keeps reading 85-86% even sitting still", "spo2", 85),
    ("the pulse oximeter says 89%", "spo2", 89),
    ("fever of 104F since last night", "temperature_c", 40.0),
    ("体温39.8度", "temperature_c", 39.8),
    ("temp 34.2C after the swim", "temperature_c", 34.2),
    ("BP 80/50 and dizzy", "systolic_bp", 80),
    ("blood pressure was 230 over 130", "systolic_bp", 230),
    ("血压 75/40", "systolic_bp", 75),
    ("pulse 150 and pounding", "pulse", 150),
    ("心率 150", "pulse", 150),
    ("breathing 34 times a minute", "respiratory_rate", 34),
    ("blood sugar 2.1 mmol", "blood_glucose_mmol", 2.1),
    ("glucose 35 mg/dl", "blood_glucose_mmol", 1.9),
])
def test_a_vital_sign_is_read_in_its_unit(text: str, measure: str, value: float) -> None:
    assert (measure, value) in {(vital.measure, vital.value) for vital in read_vitals(normalize(text))}


@pytest.mark.parametrize("text", ["I take 20 mg of amlodipine", "diagnosed in 2019", "he is 45 and weighs 80 kg",
                                  "room 1502 at the hotel", "stage 3 cancer, 4 cycles of chemo",
                                  "the finger monitor on the ward beeped 20 times"])
def test_doses_years_and_ages_are_not_vital_signs(text: str) -> None:
    assert read_vitals(normalize(text)) == []


@pytest.mark.parametrize(("text", "age", "level"), [
    ("sats 86%", "adult", "emergency"),
    ("sats 97%", "adult", "routine"),
    ("BP 78/40", "adult", "emergency"),
    ("BP 128/80", "adult", "routine"),
    ("pulse 150", "adult", "emergency"),
    ("resp rate 30", "adult", "emergency"),
    ("temp 34.5", "adult", "emergency"),
    ("temp 38.2", "infant_under_3_months", "emergency"),
    ("temp 38.2", "adult", "routine"),
    ("temp 40.3", "adult", "urgent"),  # a high number alone: see a doctor today; the signs beside it decide more
    ("blood sugar 2.1 mmol", "adult", "emergency"),
])
def test_thresholds_follow_the_guidance_for_the_age_group(thresholds: VitalThresholds, text: str, age: str,
                                                           level: str) -> None:
    found, _, _ = thresholds.judge(read_vitals(normalize(text)), age)  # type: ignore[arg-type]
    assert found == level


def test_every_threshold_names_a_source_of_the_guidance(thresholds: VitalThresholds) -> None:
    from assistant.turn.safety import Guidance

    sources = {source.id for source in load_yaml(GUIDANCE, Guidance).sources}
    assert {threshold.source for threshold in thresholds.vital_signs} <= sources


def test_each_number_belongs_to_the_measure_named_just_before_it() -> None:
    read = read_vitals(normalize("我测了一下，血氧97%，心率76，体温36.8度，都正常吧？"))
    assert {(vital.measure, vital.value) for vital in read} == {("spo2", 97), ("pulse", 76), ("temperature_c", 36.8)}
