"""Optional phrasing by a language model (any OpenAI-compatible endpoint), guarded.

The model only rewrites the template reply, which already holds every fact and citation. Its
answer is checked before anyone sees it; a hospital or department that is not in the draft, a
phone number, e-mail, price or percentage the draft does not contain, or a dropped emergency
instruction sends us back to the template reply. So do timeouts, errors and empty answers.
Triage and ranking never come from the model.
"""

from __future__ import annotations

import logging
import re
import time

from assistant.compose.templates import Composer, Phrased, Templates
from assistant.knowledge import SENSITIVE_PATTERNS, KnowledgeBase
from assistant.reply import Reply
from assistant.settings import Settings

log = logging.getLogger(__name__)

LANGUAGES = {"en": "English", "zh": "Simplified Chinese (简体中文)"}  # and the others of prompts/languages.yaml
HOSPITAL_NAME = re.compile(
    r"\b(?:[A-Z][\w'’-]+\s){1,6}(?:Hospital|Medical Center|Medical Centre|Clinic|Cancer Center)\b"
)
HOSPITAL_NAME_ZH = re.compile(r"[\u4e00-\u9fff]{2,14}?(?:医院|醫院|医学中心|醫學中心|诊所|診所|肿瘤中心)")
LINK = re.compile(r"(?:https?://|www\.)([^/\s)\]>\"']+)", re.IGNORECASE)
IMAGE = re.compile(r"!\[[^\]]*\]\(|<\s*img\b", re.IGNORECASE)
MARKUP = re.compile(r"<\s*/?\s*[a-z][a-z0-9-]*[\s>/]", re.IGNORECASE)
# A price need not have digits: "thirty thousand US dollars", "三万美元".
MONEY_WORDS = re.compile(r"\b(?:dollars?|usd|rmb|yuan|renminbi|euros?|pounds? sterling|gbp|cny)\b"
                         r"|美元|人民币|欧元|英镑|[0-9一二三四五六七八九十百千万两几]+\s*元"
                         # the same in the other languages a reply may be written in (prompts/languages.yaml)
                         r"|\b(?:d[óo]lar(?:es)?|dollari|yuanes|reais|rupiah|lira|юан\w*|доллар\w*|евро|рубл\w*)\b"
                         r"|ドル|人民元|달러|위안|đô la|nhân dân tệ|دولار|يورو|يوان", re.IGNORECASE)
# "Hospital", "Klinikum", "Hastanesi"... and the proper nouns chained to it ("Hospital General de Springfield",
# "Springfield Klinikum"): a hospital a model names in another language must be one the knowledge knows.
HOSPITAL_WORD = re.compile(r"^(?:hospital|hôpital|hopital|ospedale|krankenhaus|klinikum|klinik|clínica|clinica|"
                           r"clinique|hastanesi|hastane|rumah|больниц\w*|госпитал\w*|клиник\w*|مستشفى)$",
                           re.IGNORECASE)
NAME_JOINERS = {"de", "del", "la", "le", "du", "des", "di", "da", "do", "der", "für", "sakit", "of"}


class GuardRejected(Exception):
    """The model's answer may not be shown; the message says why (never the user's text)."""


class ModelTimeout(Exception):
    """The model did not finish within this turn's deadline."""


class ModelComposer(Composer):
    """Calls the model in the turn's own thread: no pool to queue behind, so the deadline (counted from the
    moment this turn's call starts) is the model's time alone, and nothing is shared between turns."""

    multilingual = True

    def __init__(self, templates: Templates, kb: KnowledgeBase, settings: Settings) -> None:
        super().__init__(templates, kb)
        from langchain_openai import ChatOpenAI

        self.settings = settings
        self.system_prompt = (settings.prompts_dir / "system.md").read_text(encoding="utf-8")
        self.model = ChatOpenAI(
            model=settings.openai_model,
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_s,  # connect and each read; the deadline below bounds the whole answer
            max_retries=0,
            temperature=0.2,
        )

    def phrase(self, reply: Reply, language: str) -> Phrased:
        if reply.triage == "emergency" and "crisis line" in reply.text:
            return super().phrase(reply, language)  # the crisis reply is never rephrased
        deadline = time.monotonic() + self.settings.llm_timeout_s
        try:
            answer = self._ask(reply.text, self.language_name(language), deadline)
            self.check(answer, reply)
        except GuardRejected as rejected:
            return self._fallback(reply, language, f"guard: {rejected}")
        except Exception as error:  # any failure of the endpoint: the template reply is a good answer
            if isinstance(error, ModelTimeout) or "Timeout" in type(error).__name__:
                return self._fallback(reply, language, "timeout")
            return self._fallback(reply, language, f"error: {type(error).__name__}")
        return Phrased(reply.model_copy(update={"text": answer.strip()}), "model")

    def language_name(self, language: str) -> str:
        other = self.templates.others.get(language)
        return other.name if other is not None else LANGUAGES.get(language, "English")

    def _ask(self, draft: str, language: str, deadline: float) -> str:
        from langchain_core.messages import HumanMessage, SystemMessage

        messages = [SystemMessage(self.system_prompt.replace("{language}", language)), HumanMessage(draft)]
        if not self.settings.llm_stream:
            content = self.model.invoke(messages).content
            return content if isinstance(content, str) else ""
        pieces = []
        for chunk in self.model.stream(messages):
            if time.monotonic() > deadline:
                raise ModelTimeout()
            pieces.append(chunk.content if isinstance(chunk.content, str) else "")
        return "".join(pieces)

    def _check_links_and_markup(self, answer: str, reply: Reply) -> None:
        """Links only to the domains of the reply's own sources; no image, which a browser fetches by itself
        (with the conversation in its address, a leak without a click); no markup at all."""
        if IMAGE.search(answer):
            raise GuardRejected("image")
        if MARKUP.search(answer) and not MARKUP.search(reply.text):
            raise GuardRejected("markup")
        cited = {domain_of(self.kb.sources[item.source_id].url or "") for rec in reply.recommendations
                 for item in rec.evidence if item.source_id in self.kb.sources}
        cited |= {domain.lower() for domain in LINK.findall(reply.text)}
        for domain in LINK.findall(answer):
            if domain.lower() not in cited:
                raise GuardRejected("link to a domain no source has")

    def _fallback(self, reply: Reply, language: str, reason: str) -> Phrased:
        log.warning("language model answer not used (%s): template reply sent", reason)
        return Phrased(self.in_english_for(reply, language), reason)

    def check(self, answer: str, reply: Reply) -> None:
        draft = reply.text
        if not answer or not answer.strip():
            raise GuardRejected("empty answer")
        for label, pattern in SENSITIVE_PATTERNS.items():
            for found in pattern.finditer(answer):
                if found.group(0) not in draft:
                    raise GuardRejected(f"{label} not in the draft")
        self._check_links_and_markup(answer, reply)
        if (money := MONEY_WORDS.search(answer)) and money.group(0).lower() not in draft.lower():
            raise GuardRejected("price in words not in the draft")
        allowed = {rec.hospital_id for rec in reply.recommendations}
        for hospital in self.kb.hospitals.values():
            names = [hospital.name, hospital.name_zh, *hospital.aliases]
            if hospital.id not in allowed and any(name in answer and name not in draft for name in names if name):
                raise GuardRejected(f"hospital '{hospital.id}' not in the evidence")
        for name in HOSPITAL_NAME.findall(answer):
            if name not in draft and not any(name in h.name or h.name in name for h in self.kb.hospitals.values()):
                raise GuardRejected("unknown hospital name")
        known_words = {word.lower() for h in self.kb.hospitals.values()
                       for name in (h.name, *h.aliases) for word in re.findall(r"[\w'’-]+", name)}
        known_words |= {word.lower() for word in re.findall(r"[\w'’-]+", draft)}
        if any(word.lower() not in known_words for word in names_beside_hospital_words(answer)):
            raise GuardRejected("unknown hospital name (another language)")
        for name in HOSPITAL_NAME_ZH.findall(answer):
            known = (h.name_zh for h in self.kb.hospitals.values() if h.name_zh)
            if name not in draft and not any(name in zh or zh in name for zh in known):
                raise GuardRejected("unknown hospital name (Chinese)")
        allowed_departments = {self.kb.department(rec.department_id).name for rec in reply.recommendations}
        for dept in self.kb.departments.values():
            if dept.name not in allowed_departments and dept.name in answer and dept.name not in draft:
                raise GuardRejected("department not in the evidence")
        if reply.triage == "emergency" and not any(number in answer for number in self.templates.numbers.numbers):
            raise GuardRejected("emergency instruction dropped")


def names_beside_hospital_words(answer: str) -> list[str]:
    """The capitalised words chained to each hospital word, before and after it, across joiners like "de". A word
    that starts a sentence may be capitalised for that alone ("Das Krankenhaus..."): it counts only when it is
    longer than an article and right before the hospital word ("Springfield Klinikum ist...")."""
    tokens = list(re.finditer(r"[\w'’-]+", answer))
    starts_sentence = [not answer[:token.start()].rstrip() or answer[:token.start()].rstrip()[-1] in ".!?:;\n"
                       for token in tokens]
    found = []
    for at, token in enumerate(tokens):
        if not HOSPITAL_WORD.match(token.group()):
            continue
        for step in (-1, 1):  # a chain stays inside its sentence
            position = at + step
            while 0 <= position < len(tokens) and not (step == 1 and starts_sentence[position]) and (
                    tokens[position].group()[0].isupper() or tokens[position].group().lower() in NAME_JOINERS):
                word = tokens[position].group()
                counted = not starts_sentence[position] or (position == at - 1 and len(word) > 3)
                if word[0].isupper() and counted and not HOSPITAL_WORD.match(word):
                    found.append(word)
                if starts_sentence[position]:
                    break
                position += step
    return found


def domain_of(url: str) -> str:
    found = LINK.search(url)
    return found.group(1).lower() if found else ""
