"""The command line: `python -m assistant validate [--stale DAYS] | index | match "text" | settings | keys | purge`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time

from assistant.datafile import START_REFUSED_EXIT_CODE, DataFileError, first_line, load_yaml
from assistant.knowledge import (
    KnowledgeBase,
    coverage_exceptions,
    coverage_problems,
    load_hospital_ids,
    load_knowledge,
    unsourced_sensitive_text,
)
from assistant.settings import PROJECT_ROOT, Settings, set_offline_environment


def cmd_validate(settings: Settings, stale_days: int | None = None) -> int:
    from assistant.source_policy import SourcePolicy, policy_problems, unlinked_sources
    from assistant.turn.safety import Guidance

    try:
        kb = load_knowledge(settings.knowledge_dir)
        policy = SourcePolicy.load(settings.knowledge_dir)
        guidance_path = settings.knowledge_dir / "safety" / "guidance.yaml"
        guidance = load_yaml(guidance_path, Guidance)
    except DataFileError as error:
        print(f"invalid knowledge:\n{error}", file=sys.stderr)
        return 1
    sources = {**kb.sources, **{source.id: source for source in guidance.sources}}
    files = {**kb.source_files, **{source.id: guidance_path for source in guidance.sources}}
    exceptions = coverage_exceptions(settings.knowledge_dir)
    problems = coverage_problems(kb, exceptions) + unsourced_sensitive_text(kb) + policy_problems(sources, files,
                                                                                                   policy)
    for code, reason in exceptions.items():
        print(f"note: '{code}' is below the two-hospital rule: {' '.join(reason.split())}")
    for note in unlinked_sources(sources, files):
        print(f"note: {note}")
    claims = sum(len(d.claims()) + len(d.rankings) for d in kb.departments.values())
    claims += sum(len(h.about) + len(h.international_service) for h in kb.hospitals.values())
    oldest, newest = kb.checked_range
    print(f"hospitals {len(kb.hospitals)}, departments {len(kb.departments)}, claims {claims}, "
          f"sources {len(kb.sources)}, intake guides {len(kb.intake)}, vocabulary entries {len(kb.vocabulary)}; "
          f"sources checked {oldest} to {newest}")
    if stale_days is not None:
        print_stale(kb, stale_days)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def print_stale(kb: KnowledgeBase, days: int) -> None:
    """Per hospital, each source checked more than `days` ago and the facts that rest on it: what to re-check."""
    from assistant.source_policy import stale_facts

    stale = stale_facts(kb, days, dt.date.today())
    total = sum(len(facts) for by_source in stale.values() for facts in by_source.values())
    print(f"stale: {total} fact(s) rest on sources checked more than {days} days ago")
    for owner, by_source in sorted(stale.items()):
        print(f"  {owner}: {sum(len(facts) for facts in by_source.values())} fact(s)")
        for source_id, facts in sorted(by_source.items()):
            print(f"    {source_id} (checked {kb.sources[source_id].checked}): {', '.join(facts)}")


def cmd_index(settings: Settings) -> int:
    from assistant.build import build_engine

    engine = build_engine(settings)
    stats = engine.index_stats
    print(f"{stats.collection}: {stats.chunks} chunks, {'reused' if stats.reused else 'built'} in {stats.seconds:.2f}s")
    models = engine.models
    print(f"models-{models.fingerprint}: {'trained' if models.trained else 'reused'} in {models.seconds:.2f}s")
    return 0


def cmd_vectors(settings: Settings) -> int:
    """Choose the calm sentences again and refresh the training vectors that ship with the data, so a fresh clone
    trains in seconds."""
    from assistant.build import configured_embedder, learned_training_set
    from assistant.knowledge import load_knowledge
    from assistant.learned import CALM_SENTENCES_FILE, all_texts, mine_calm_sentences, vector_cache
    from assistant.turn.message import Message
    from assistant.turn.safety import SafetyChecker

    embedder = configured_embedder(settings)
    cache = vector_cache(settings.knowledge_dir, settings.models_dir, embedder)
    rules = SafetyChecker.load(settings.knowledge_dir / "safety", load_knowledge(settings.knowledge_dir).language)
    def alarming(sentence: str) -> bool:
        return bool(rules.danger_words(sentence)) or rules.triage(Message.read(sentence, embedder)).is_emergency

    calm = mine_calm_sentences(learned_training_set(settings), cache, alarming)
    calm_file = settings.knowledge_dir / "training" / CALM_SENTENCES_FILE
    calm_file.write_text(CALM_SENTENCES_HEADER + "\n".join(calm) + "\n", encoding="utf-8")
    texts = all_texts(learned_training_set(settings))
    cache.embed(texts)
    cache.save(cache.shipped, only=texts)
    print(f"{calm_file}: {len(calm)} sentences\n{cache.shipped}: vectors of {len(set(texts))} texts")
    return 0


CALM_SENTENCES_HEADER = """\
# Sentences of non-emergency training messages (routing lines, urgent and near-miss triage lines) that an emergency
# model trained on whole messages scored highest; the triage model learns them as non-emergencies.
# Chosen by `python -m assistant vectors` from the training files alone: do not edit by hand.
"""


def cmd_ontology(settings: Settings) -> int:
    """Regenerate knowledge/ontology/terms.tsv from the reviewed map and the installed ICD-10 and HPO."""
    from assistant.build import learned_training_set
    from assistant.knowledge import ONTOLOGY_TERMS, load_knowledge
    from assistant.ontology import distinctive_words, generate, write_terms
    from assistant.text import normalize

    kb = load_knowledge(settings.knowledge_dir)
    hand_terms = {normalize(entry.term) for entry in kb.vocabulary}
    terms = generate(settings.knowledge_dir / "ontology" / "map.yaml", hand_terms)
    everyday = learned_training_set(settings).everyday_words() | {w for t in hand_terms for w in t.split()}
    terms |= distinctive_words(terms, everyday)
    write_terms(settings.knowledge_dir / ONTOLOGY_TERMS, terms)
    print(f"{settings.knowledge_dir / ONTOLOGY_TERMS}: {len(terms)} terms")
    return 0


def cmd_match(settings: Settings, text: str, hospital: str | None, as_json: bool) -> int:
    from assistant.build import build_engine

    engine = build_engine(settings)
    result = engine.match(text, hospital)
    if as_json:
        print(json.dumps([rec.model_dump() for rec in result.recommendations], ensure_ascii=False, indent=2))
        return 0
    case = result.case
    print(f"terms: {', '.join(case.terms) or '-'} | child: {engine.understander.patient_is_child(case)} | "
          f"codes: {engine.understander.specialty_scores(case)} | {result.seconds * 1000:.1f} ms")
    for position, rec in enumerate(result.recommendations, start=1):
        signals = " ".join(f"{name}={value:.2f}" for name, value in rec.signals.items())
        print(f"{position:2}. {rec.department_id:45} {rec.score:.3f}  [{signals}]")
        print(f"    why: {rec.why}")
        for evidence in rec.evidence:
            print(f"    - [{evidence.source_id}] {evidence.quote}")
    return 0


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    """Inbox keys for hospitals' international departments: the key is printed once, only its hash is kept."""
    from assistant.store.database import Store

    store = Store.open(settings.database)
    if args.action == "create":
        known = load_hospital_ids(settings.knowledge_dir)
        if args.hospital not in known:
            print(f"unknown hospital id '{args.hospital}'; known: {', '.join(sorted(known))}", file=sys.stderr)
            return 2
        key = store.create_key(args.hospital)
        print(key)
        print(f"inbox key for '{args.hospital}'. It is shown only this once: give it to the hospital over a secure "
              "channel. Revoke it with `python -m assistant keys revoke "
              f"{key.split('_')[1]}`.", file=sys.stderr)
        return 0
    if args.action == "revoke":
        if not store.revoke_key(args.key):
            print(f"no active key '{args.key}'", file=sys.stderr)
            return 1
        print(f"revoked {args.key.split('_')[1] if args.key.startswith('care_') else args.key}")
        return 0
    for key in store.inbox_keys():
        print(f"{key.id}  {key.hospital_id:20} created {key.created_at:%Y-%m-%d %H:%M}  "
              f"{'revoked' if key.revoked else 'active'}")
    return 0


def cmd_purge(settings: Settings) -> int:
    from datetime import timedelta

    from assistant.store.database import Store

    removed = Store.open(settings.database).purge_conversations(timedelta(days=settings.retention_days))
    print(f"purged {removed} conversation(s) untouched for {settings.retention_days} days")
    return 0


def cmd_settings() -> int:
    """Print the settings table that the README shows."""
    print("| variable | default | meaning |\n| --- | --- | --- |")
    for name, info in Settings.model_fields.items():
        env = f"CARE_{name.upper()}"
        if info.validation_alias is not None:
            env = " / ".join(str(choice) for choice in info.validation_alias.choices)
        default = info.get_default(call_default_factory=True)
        shown = str(default).replace(str(PROJECT_ROOT), ".").replace(str(PROJECT_ROOT.parent), "..")
        print(f"| `{env}` | `{shown}` | {info.description or ''} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m assistant")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check the knowledge base and exit non-zero on a problem")
    validate.add_argument("--stale", type=int, metavar="DAYS",
                          help="also list, per hospital, the facts whose source was checked more than DAYS ago")
    commands.add_parser("index", help="build the index, or reuse it when the knowledge is unchanged")
    match = commands.add_parser("match", help="rank departments for one message")
    match.add_argument("text")
    match.add_argument("--hospital", help="scope to one hospital id, as the widget does")
    match.add_argument("--json", action="store_true")
    commands.add_parser("settings", help="print the settings table for the README")
    keys = commands.add_parser("keys", help="inbox keys for hospitals: create, revoke, list")
    key_actions = keys.add_subparsers(dest="action", required=True)
    key_actions.add_parser("create", help="print a new key once").add_argument("--hospital", required=True)
    key_actions.add_parser("revoke", help="revoke by key id or the whole key").add_argument("key")
    key_actions.add_parser("list", help="key ids, hospitals and whether they are active")
    commands.add_parser("purge", help="delete conversations older than the retention setting")
    commands.add_parser("vectors", help="refresh the shipped vectors of the training data (after editing it)")
    commands.add_parser("ontology", help="regenerate the ICD-10 and HPO terms from knowledge/ontology/map.yaml")
    args = parser.parse_args(argv)

    if args.command == "settings":
        return cmd_settings()
    try:
        return run(args)
    except DataFileError as error:
        print(f"refused: {first_line(error)}", file=sys.stderr)
        return START_REFUSED_EXIT_CODE


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    started = time.perf_counter()
    if args.command == "validate":
        return cmd_validate(settings, args.stale)
    if args.command == "keys":
        return cmd_keys(settings, args)
    if args.command == "purge":
        return cmd_purge(settings)
    if args.command == "vectors":
        return cmd_vectors(settings)
    if args.command == "ontology":
        return cmd_ontology(settings)
    if args.command == "index":
        code = cmd_index(settings)
        print(f"total {time.perf_counter() - started:.1f}s")
        return code
    return cmd_match(settings, args.text, args.hospital, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
