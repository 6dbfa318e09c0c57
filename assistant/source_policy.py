"""Which sources a fact may cite, and how long ago each was checked.

`knowledge/source_policy.yaml` lists the domains that count (the hospital's own site, its university,
government, journals, established news, professional bodies, Wikipedia itself) and those that never do
(mirrors, content farms, directories, agencies). `python -m assistant validate` reports every source outside
it with its file and id, and `validate --stale DAYS` lists the facts whose source was checked longest ago.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

from assistant.datafile import Strict, load_yaml
from assistant.knowledge import KnowledgeBase, Source

POLICY_FILE = "source_policy.yaml"


class DeniedDomain(Strict):
    domain: str
    reason: str


class SourcePolicy(Strict):
    allow: dict[str, list[str]]  # kind of source -> domains
    deny: list[DeniedDomain]

    @classmethod
    def load(cls, knowledge_dir: Path) -> SourcePolicy:
        return load_yaml(knowledge_dir / POLICY_FILE, cls)

    def problem_with(self, source: Source) -> str | None:
        """Why this source may not be cited, or None. A source without a link names its publication instead."""
        if not source.url:
            return None
        host = (urlparse(source.url).hostname or "").lower().removeprefix("www.")
        for denied in self.deny:
            if covers(denied.domain, host):
                return f"'{host}' is denied ({denied.reason})"
        if not any(covers(domain, host) for domains in self.allow.values() for domain in domains):
            return f"'{host}' is not on the allow list of {POLICY_FILE}"
        return None


def covers(domain: str, host: str) -> bool:
    return host == domain or host.endswith(f".{domain}")


def policy_problems(sources: dict[str, Source], files: dict[str, Path], policy: SourcePolicy) -> list[str]:
    return [f"{files[source_id]}: source '{source_id}': {problem}"
            for source_id, source in sorted(sources.items()) if (problem := policy.problem_with(source))]


def unlinked_sources(sources: dict[str, Source], files: dict[str, Path]) -> list[str]:
    """Sources with no link: each says which publication it is instead (printed, not a problem)."""
    return [f"{files[source_id]}: source '{source_id}' has no link: {source.publication}"
            for source_id, source in sorted(sources.items()) if not source.url]


def checked_on(source: Source) -> dt.date:
    """A source checked in "2026-11" counts as checked on the first of that month: never younger than it is."""
    year, month = source.checked.split("-")
    return dt.date(int(year), int(month), 1)


def facts_by_source(kb: KnowledgeBase) -> dict[str, list[tuple[str, str]]]:
    """Hospital id (or "intake/<topic>") -> (where, source id) for every sourced fact."""
    facts: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for hospital in kb.hospitals.values():
        for kind, claims in (("about", hospital.about), ("international_service", hospital.international_service),
                             ("campuses", hospital.campuses)):
            facts[hospital.id] += [(f"{kind}.{i}", s) for i, claim in enumerate(claims) for s in claim.sources]
        for dept in hospital.departments:
            facts[hospital.id] += [(dept.id, s) for s in dept.sources]
            for kind, items in (("known_for", dept.known_for), ("programmes", dept.programmes),
                                ("intake_notes", dept.intake_notes), ("rankings", dept.rankings)):
                facts[hospital.id] += [(f"{dept.id}.{kind}.{i}", s) for i, item in enumerate(items)
                                       for s in item.sources]
    for topic, guide in kb.intake.items():
        facts[f"intake/{topic}"] += [(f"steps.{i}", s) for i, step in enumerate(guide.steps) for s in step.sources]
    return facts


def stale_facts(kb: KnowledgeBase, days: int, today: dt.date) -> dict[str, dict[str, list[str]]]:
    """Per hospital, the sources checked more than `days` ago and the facts resting on each."""
    cutoff = today - dt.timedelta(days=days)
    stale: dict[str, dict[str, list[str]]] = {}
    for owner, facts in facts_by_source(kb).items():
        for where, source_id in facts:
            if checked_on(kb.sources[source_id]) < cutoff:
                stale.setdefault(owner, {}).setdefault(source_id, []).append(where)
    return stale
