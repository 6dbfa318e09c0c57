"""The knowledge base loads, follows the review rules, and a broken file names its file and field."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from assistant.datafile import DataFileError
from assistant.knowledge import (
    coverage_exceptions,
    coverage_problems,
    load_knowledge,
    sourced_texts,
    unsourced_sensitive_text,
)
from assistant.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def real_kb():
    return load_knowledge(PROJECT_ROOT / "knowledge")


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_every_hospital_id_in_the_contract_has_a_profile(real_kb):
    assert set(real_kb.hospitals) == set(real_kb.hospital_ids)


def test_knowledge_meets_every_coverage_rule(real_kb):
    assert coverage_problems(real_kb, coverage_exceptions(PROJECT_ROOT / "knowledge")) == []


def test_a_coverage_exception_only_excuses_a_code_that_has_at_least_one_hospital(real_kb):
    assert any("pediatric_transplant" in p for p in coverage_problems(real_kb))
    assert not any("pediatric_transplant" in p for p in coverage_problems(real_kb, {"pediatric_transplant": "x"}))
    empty_code = {"astrology_unused": "test"}
    assert coverage_problems(real_kb, empty_code) == coverage_problems(real_kb)


def test_no_phone_email_price_rate_or_wait_without_a_verbatim_source(real_kb):
    assert unsourced_sensitive_text(real_kb) == []


def test_the_sensitive_text_scan_catches_each_kind_of_invented_detail(knowledge_copy):
    invented = [
        "Call +86 21 6437 0045 to book.",
        "Write to intl@ruijin.example.com.",
        "A course costs CNY 170,000.",
        "The hospital reports a 94% success rate.",
        "Most patients wait about two weeks for a bed.",
    ]
    path = knowledge_copy / "hospitals" / "ruijin.yaml"
    _edit(path, lambda data: data["departments"][0]["known_for"].extend(
        {"text": text, "sources": data["departments"][0]["sources"][:1]} for text in invented))
    problems = unsourced_sensitive_text(load_knowledge(knowledge_copy))
    found = " ".join(problems)
    for label in ("phone number", "e-mail address", "price", "rate", "waiting time"):
        assert label in found, f"{label} not caught: {problems}"


def test_every_cited_source_has_a_date_checked_and_a_location(real_kb):
    for source in real_kb.sources.values():
        assert source.url or source.publication
        assert re.match(r"^\d{4}-\d{2}$", source.checked)


def test_research_programmes_are_never_presented_as_available(real_kb):
    for dept in real_kb.departments.values():
        for programme in dept.programmes:
            if "cs-101" in (programme.name + programme.text).lower() or "trial" in programme.name.lower():
                assert programme.status == "research", programme
                assert "research" in programme.text.lower()


def test_volume_claims_are_attributed_to_whoever_reports_them(real_kb):
    volume = re.compile(r"\b\d[\d,]{2,}\+?\s(?:patients|transplants|cases|visits|operations|children)\b")
    for where, text, _ in sourced_texts(real_kb):
        if volume.search(text):
            assert "report" in text.lower() or "said" in text.lower() or "according to" in text.lower(), where


def test_pediatric_departments_belong_to_hospitals_that_treat_children(real_kb):
    pediatric_codes = {code for code, spec in real_kb.specialties.items() if spec.pediatric}
    for dept in real_kb.departments.values():
        if pediatric_codes.intersection(dept.specialties):
            assert real_kb.hospitals[dept.hospital_id].treats_children, dept.id
            assert dept.audience in ("pediatric", "both"), dept.id


def test_a_missing_field_names_the_file_and_the_field(knowledge_copy):
    path = knowledge_copy / "hospitals" / "renji.yaml"
    _edit(path, lambda data: data["departments"][0].pop("audience"))
    with pytest.raises(DataFileError) as error:
        load_knowledge(knowledge_copy)
    assert "renji.yaml" in str(error.value)
    assert "departments.0.audience" in str(error.value)


def test_an_unknown_source_id_names_the_file_and_the_claim(knowledge_copy):
    path = knowledge_copy / "hospitals" / "huashan.yaml"
    _edit(path, lambda data: data["departments"][1]["known_for"].append({"text": "x", "sources": ["no-such-source"]}))
    with pytest.raises(DataFileError) as error:
        load_knowledge(knowledge_copy)
    assert "huashan.yaml" in str(error.value) and "no-such-source" in str(error.value)
    assert "departments.1.known_for" in str(error.value)


@pytest.mark.parametrize(("edit", "field"), [
    (lambda names: names.pop("neonatology"), "neonatology"),
    (lambda names: names.update({"cardiolgy": "心内科"}), "cardiolgy"),
])
def test_every_specialty_has_exactly_one_chinese_name(knowledge_copy, edit, field):
    path = knowledge_copy / "language" / "specialty_names_zh.yaml"
    _edit(path, edit)
    with pytest.raises(DataFileError) as error:
        load_knowledge(knowledge_copy)
    assert "specialty_names_zh.yaml" in str(error.value) and f"'{field}'" in str(error.value)


def test_an_unknown_specialty_code_is_rejected(knowledge_copy):
    path = knowledge_copy / "hospitals" / "ruijin.yaml"
    _edit(path, lambda data: data["departments"][0]["specialties"].append("astrology"))
    with pytest.raises(DataFileError, match=r"ruijin\.yaml.*departments\.0\.specialties.*astrology"):
        load_knowledge(knowledge_copy)


def test_a_pediatric_code_in_an_adult_only_hospital_is_rejected(knowledge_copy):
    path = knowledge_copy / "hospitals" / "chest_hospital.yaml"
    _edit(path, lambda data: data["departments"][0]["specialties"].append("neonatology"))
    with pytest.raises(DataFileError, match=r"chest_hospital\.yaml.*neonatology"):
        load_knowledge(knowledge_copy)


def test_a_malformed_date_names_the_source_field(knowledge_copy):
    path = knowledge_copy / "hospitals" / "zhongshan.yaml"
    _edit(path, lambda data: data["sources"][0].update(published="last spring"))
    with pytest.raises(DataFileError, match=r"zhongshan\.yaml.*sources\.0\.published"):
        load_knowledge(knowledge_copy)


def test_invalid_yaml_names_the_file(knowledge_copy):
    (knowledge_copy / "hospitals" / "eent.yaml").write_text("id: eent\n  name: [broken", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"eent\.yaml.*not valid YAML"):
        load_knowledge(knowledge_copy)


def test_a_vocabulary_weight_out_of_range_is_rejected(knowledge_copy):
    path = next((knowledge_copy / "vocabulary").glob("[!c]*.yaml"))
    _edit(path, lambda data: data["entries"][0]["codes"].update(hematology=3.0))
    with pytest.raises(DataFileError, match=rf"{path.name}.*entries\.0\.codes"):
        load_knowledge(knowledge_copy)


def test_the_fingerprint_changes_exactly_when_the_knowledge_changes(knowledge_copy, real_kb):
    same = load_knowledge(knowledge_copy)
    assert same.fingerprint == real_kb.fingerprint
    _edit(knowledge_copy / "hospitals" / "renji.yaml", lambda data: data.update(summary=data["summary"] + " More."))
    assert load_knowledge(knowledge_copy).fingerprint != real_kb.fingerprint


def test_validate_command_passes_on_the_real_knowledge(capsys):
    from assistant.cli import main

    assert main(["validate"]) == 0
    assert "ok" in capsys.readouterr().out


def test_validate_command_fails_on_a_broken_file(knowledge_copy, monkeypatch, capsys):
    from assistant.cli import main

    _edit(knowledge_copy / "hospitals" / "renji.yaml", lambda data: data.pop("name_zh"))
    monkeypatch.setenv("CARE_KNOWLEDGE_DIR", str(knowledge_copy))
    assert main(["validate"]) == 1
    assert "renji.yaml" in capsys.readouterr().err


def test_the_readme_settings_table_is_the_one_the_code_prints(capsys):
    from assistant.cli import main

    main(["settings"])
    table = capsys.readouterr().out.strip()
    assert table in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_validate_names_the_file_and_the_source_id_of_a_denied_or_unlisted_domain(knowledge_copy, monkeypatch,
                                                                                   capsys):
    from assistant.cli import main

    def cite_copies(data: dict) -> None:
        data["sources"][0]["url"] = "https://www.jigsawpuzzleszone.com/renji-copy"
        data["sources"][1]["url"] = "https://unknown-health-portal.example/renji"

    _edit(knowledge_copy / "hospitals" / "renji.yaml", cite_copies)
    first, second = (yaml.safe_load((knowledge_copy / "hospitals" / "renji.yaml").read_text())["sources"][i]["id"]
                     for i in (0, 1))
    monkeypatch.setenv("CARE_KNOWLEDGE_DIR", str(knowledge_copy))
    assert main(["validate"]) == 1
    errors = capsys.readouterr().err
    assert f"renji.yaml: source '{first}': 'jigsawpuzzleszone.com' is denied" in errors
    assert f"renji.yaml: source '{second}': 'unknown-health-portal.example' is not on the allow list" in errors


def test_every_domain_a_fact_cites_is_on_the_allow_list_and_none_is_denied(real_kb):
    from assistant.source_policy import SourcePolicy, covers

    policy = SourcePolicy.load(PROJECT_ROOT / "knowledge")
    cited = sorted({(urlparse(s.url).hostname or "").removeprefix("www.") for s in real_kb.sources.values() if s.url})
    allowed = [domain for domains in policy.allow.values() for domain in domains]
    assert all(any(covers(domain, host) for domain in allowed) for host in cited), cited
    assert not [host for host in cited for denied in policy.deny if covers(denied.domain, host)]


def test_stale_lists_per_hospital_the_facts_on_sources_checked_too_long_ago(real_kb):
    import datetime as dt

    from assistant.source_policy import stale_facts

    oldest, newest = real_kb.checked_range
    year, month = map(int, newest.split("-"))
    a_year_on = dt.date(year + 1, month, 1)
    everything = stale_facts(real_kb, days=1, today=a_year_on)
    assert set(everything) >= set(real_kb.hospitals), "a year on, every hospital has facts to re-check"
    ruijin = everything["ruijin"]
    assert all(real_kb.sources[source_id].checked <= newest for source_id in ruijin)
    assert any(where.startswith("ruijin/hematology") for facts in ruijin.values() for where in facts)
    first_year, first_month = map(int, oldest.split("-"))
    assert stale_facts(real_kb, days=1, today=dt.date(first_year, first_month, 1)) == {}, "none before the oldest"


def test_the_readme_states_the_knowledges_date(real_kb):
    oldest, newest = real_kb.checked_range
    assert f"sources checked {oldest} to {newest}" in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
