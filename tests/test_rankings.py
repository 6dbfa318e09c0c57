"""A department's ranking line says what the Fudan lists say: which list (national or East China), its rank or a
nomination, and the edition; and every place in the knowledge is one the ranking notes record.

`knowledge/contracts/specialty-rankings.md` is the project's copy of the shared ranking notes (compared with
`../shared` when it is there); its bullets are read here, never by the product.
"""

from __future__ import annotations

import re

import pytest

from assistant.knowledge import RankingPlace, load_knowledge
from assistant.retrieval.match import describe_place
from assistant.settings import PROJECT_ROOT

NOTES = PROJECT_ROOT / "knowledge" / "contracts" / "specialty-rankings.md"
SHARED_NOTES = PROJECT_ROOT.parent / "shared" / "specialty-rankings.md"
RANKED = re.compile(r"^- (National|East China)( joint)? #(\d+)(?: \(not Shanghai\))? — (.+?) — (\d{4}) ed\.")
NOMINATED = re.compile(r"^- (Nominated|East China nominated) \(.*?\) — (.+?) — (\d{4}) ed\.")
EARLIER = re.compile(r"^- Prior edition check, (\d{4}) ed\. national top 10: (.+?)(?: \[source|$)")
EARLIER_PLACE = re.compile(r"^(.+?) #(\d+)$")
OTHER_SHANGHAI = re.compile(r"^other Shanghai: (.+?) \(([^()]+)\)$")  # "other Shanghai: <English> (<Chinese>)"
SAME_CATEGORY = re.compile(r"(?:Same combined category as|repeat facts from) ([a-z_]+)")  # "obstetrics" = "gynecology"


def hospital_ids_by_name(kb) -> dict[str, str]:
    return {name: hospital.id for hospital in kb.hospitals.values()
            for name in (hospital.id, hospital.name, hospital.name_zh, *hospital.aliases)}


def hospital_id(named: str, ids_by_name: dict[str, str]) -> str:
    """An id as the notes write it, or the id of a hospital the notes name as "other Shanghai" and the knowledge
    has since added."""
    other = OTHER_SHANGHAI.match(named.strip())
    if not other:
        return named.strip()
    english, chinese = other.groups()
    return ids_by_name.get(chinese) or ids_by_name.get(english.split(" (")[0]) or named.strip()


def places_in_the_notes(ids_by_name: dict[str, str]) -> set[tuple]:
    """(hospital id, code, list, rank or None, edition) for every Shanghai place the notes record."""
    places: set[tuple] = set()
    same_category: dict[str, str] = {}
    code = None
    for line in NOTES.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            code = line[3:].strip()
        elif (same := SAME_CATEGORY.search(line)) and code:
            same_category[code] = same.group(1)
        elif ranked := RANKED.match(line):
            scope, _, rank, who, edition = ranked.groups()
            places |= {(hospital_id(hospital, ids_by_name), code, "national" if scope == "National" else "east_china",
                        int(rank), int(edition)) for hospital in re.split(r",\s*", who)}
        elif nominated := NOMINATED.match(line):
            scope, who, edition = nominated.groups()
            places |= {(hospital_id(hospital, ids_by_name), code, "national" if scope == "Nominated" else "east_china",
                        None, int(edition)) for hospital in re.split(r",\s*", who)}
        elif earlier := EARLIER.match(line):
            edition, listed = earlier.groups()
            for item in listed.split(";"):
                if earlier_place := EARLIER_PLACE.match(item.strip()):
                    hospital, rank = earlier_place.groups()
                    places.add((hospital_id(hospital, ids_by_name), code, "national", int(rank), int(edition)))
    for code, other in same_category.items():  # a code whose notes point at another code's Fudan category
        places |= {(hospital, code, *rest) for hospital, listed_code, *rest in list(places) if listed_code == other}
    return places


@pytest.fixture(scope="module")
def kb():
    return load_knowledge(PROJECT_ROOT / "knowledge")


def ranked_departments(kb) -> list[tuple[str, str, RankingPlace]]:
    return [(dept.hospital_id, dept.id, place) for dept in kb.departments.values() for place in dept.rankings]


def test_every_ranking_place_in_the_knowledge_is_one_the_ranking_notes_record(kb) -> None:
    recorded = places_in_the_notes(hospital_ids_by_name(kb))
    assert len(recorded) > 100
    unrecorded = [(dept_id, place.code, place.list, place.rank, place.edition)
                  for hospital, dept_id, place in ranked_departments(kb)
                  if (hospital, place.code, place.list, None if place.nominated else place.rank, place.edition)
                  not in recorded]
    assert not unrecorded, unrecorded


def test_every_ranking_line_names_its_list_its_rank_or_nomination_and_its_edition(kb) -> None:
    places = ranked_departments(kb)
    assert len(places) > 50
    for _, dept_id, place in places:
        line = describe_place(place, kb.specialties[place.code].name)
        assert f"({place.edition} edition)" in line, (dept_id, line)
        if place.list == "national":
            assert "nationally" in line or "outside the top 10" in line, (dept_id, line)
            assert "East China" not in line, (dept_id, line)
        else:
            assert "East China specialty reputation ranking" in line, (dept_id, line)
            assert "nationally" not in line, (dept_id, line)
        if place.nominated or place.rank is None:
            assert line.startswith("nominated") and "ranked" not in line, (dept_id, line)
        else:
            assert line.startswith("ranked") and re.search(rf"\b{place.rank}(st|nd|rd|th)\b", line), (dept_id, line)


def test_an_east_china_nomination_is_never_worded_as_a_national_one() -> None:
    place = RankingPlace(code="neurosurgery", list="east_china", nominated=True, edition=2023, sources=["x"])
    assert describe_place(place, "Neurosurgery") == ("nominated (listed outside the East China top 5) in neurosurgery "
                                                     "in the Fudan East China specialty reputation ranking "
                                                     "(2023 edition)")


@pytest.mark.skipif(not SHARED_NOTES.is_file(), reason="../shared is not beside this clone")
def test_the_ranking_notes_are_the_shared_ones() -> None:
    assert NOTES.read_text(encoding="utf-8") == SHARED_NOTES.read_text(encoding="utf-8")
