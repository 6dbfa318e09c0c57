"""The operations the web page, the REST API and the widget share, over the assistant and the store.

A conversation is read from the store, one turn runs through `Assistant.stream`, and the result is
saved before anything is sent back: a turn the user saw is a turn that was kept. Nothing lives in
this object between requests, so any copy of the app can serve any request.
"""

from __future__ import annotations

import hashlib
import logging

from assistant.conversation import Conversation
from assistant.flow import Answer, Assistant
from assistant.knowledge import UnknownHospital
from assistant.reply import ReferralSummary
from assistant.store.database import ConversationChanged, Referral, Store, StoredConversation, request_fingerprint
from assistant.text import first_control_character

SAVE_ATTEMPTS = 3
log = logging.getLogger(__name__)  # short ids and counts only: never text, contacts or a whole conversation id


class NotFound(Exception):
    """Unknown or deleted conversation, hospital or referral (another hospital's referral included)."""


class Invalid(Exception):
    """A request the engine cannot act on; `field` names what to fix."""

    code = "invalid_request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class MessageTooLong(Invalid):
    """Refused before anything runs or is stored, whichever way the message came (API, page, widget)."""

    code = "message_too_long"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__("text", f"The message has {length:,} characters; the limit is {limit:,}. Please shorten it.")


class ConversationFull(Invalid):
    code = "conversation_full"

    def __init__(self, limit: int) -> None:
        super().__init__("conversation", f"This conversation has reached {limit} messages. Please start a new "
                                         "conversation for more questions; referrals already sent are kept.")


class ControlCharacter(Invalid):
    code = "control_character"

    def __init__(self, field: str, character: str) -> None:
        super().__init__(field, f"{field}: contains the control character U+{ord(character):04X}; remove it and "
                                "send the text again")


def check_plain_text(field: str, text: str) -> None:
    """The one gate for typed text, whichever entrance it came through (API, page, widget)."""
    bad = first_control_character(text)
    if bad is not None:
        raise ControlCharacter(field, bad)


CONTACT_MARKUP = '<>"`\\'


def scoped_key(conversation_id: str, idempotency_key: str) -> str:
    """The stored idempotency key: the client's key within its conversation, hashed to a fixed length."""
    return hashlib.sha256(f"{conversation_id}\0{idempotency_key}".encode()).hexdigest()


def referral_request_hash(conversation_id: str, department_id: str, contact: str) -> str:
    """What a retry must repeat exactly: the same key with another request is refused, not answered."""
    return request_fingerprint({"conversation_id": conversation_id, "department_id": department_id,
                                "contact": contact})


class CareService:
    def __init__(self, assistant: Assistant, store: Store) -> None:
        self.assistant = assistant
        self.store = store

    # --- conversations ------------------------------------------------------------------------------
    def start(self, widget_hospital: str | None = None, language: str | None = None) -> Conversation:
        try:
            conv = self.assistant.start(widget_hospital=widget_hospital, language=language)
        except UnknownHospital as unknown:
            raise Invalid("widget_hospital", f"{unknown}; GET /api/v1/hospitals lists the ids") from None
        self.store.add_conversation(conv)
        log.info("conversation %s~ started (widget %s)", conv.id[:8], widget_hospital or "-")
        return conv

    def conversation(self, conversation_id: str) -> StoredConversation:
        stored = self.store.conversation(conversation_id)
        if stored is None:
            raise NotFound(f"no conversation '{conversation_id}': it may have expired or been deleted; "
                           "start a new one")
        return stored

    def send(self, conversation_id: str, text: str) -> Answer:
        """Answer one message and save the conversation; a concurrent save by another copy is retried."""
        limit = self.assistant.settings.max_message_chars
        if len(text) > limit:
            raise MessageTooLong(len(text), limit)
        check_plain_text("text", text)
        for attempt in range(SAVE_ATTEMPTS):
            stored = self.conversation(conversation_id)
            conv = stored.conversation
            if len(conv.turns) >= self.assistant.settings.max_turns and text.strip():
                raise ConversationFull(self.assistant.settings.max_turns)
            answer = self.assistant.answer(conv, text)
            if not text.strip():
                return answer  # the friendly prompt for an empty message changes nothing
            try:
                self.store.save_conversation(conv, stored.version, stored.turns_saved)
                log.info("conversation %s~ turn %d: triage %s, %d recommendation(s)", conv.id[:8], len(conv.turns),
                         answer.reply.triage, len(answer.reply.recommendations))
                return answer
            except ConversationChanged:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
        raise ConversationChanged(conversation_id)  # only reached with SAVE_ATTEMPTS == 0

    def delete(self, conversation_id: str) -> None:
        if not self.store.delete_conversation(conversation_id):
            raise NotFound(f"no conversation '{conversation_id}'")

    # --- referrals ----------------------------------------------------------------------------------
    def referral_summary(self, conv: Conversation, department_id: str) -> ReferralSummary:
        """What would be sent for this department: only what the user wrote, shown before consent."""
        kb = self.assistant.kb
        if department_id not in kb.departments:
            raise Invalid("department_id", f"unknown department '{department_id}'; use a department_id from a "
                                           "recommendation")
        department = kb.departments[department_id]
        hospital_id = department.hospital_id
        if conv.widget_hospital is not None and hospital_id != conv.widget_hospital:
            raise Invalid("department_id", f"this conversation is scoped to '{conv.widget_hospital}'; choose one "
                                           "of its departments")
        if not conv.case.texts:
            raise Invalid("conversation", "nothing to refer yet: describe the patient's situation first")
        if department_id not in {rec.department_id for rec in conv.shortlist}:
            raise Invalid("department_id", f"'{department_id}' is not one of this conversation's recommendations; "
                                           "choose a department_id from the latest reply")
        summary = self.assistant.composer.referral(conv.case, None, conv.widget_hospital)
        return summary.model_copy(update={"hospital_id": hospital_id, "department_id": department_id})

    def referral_markdown(self, summary: ReferralSummary, language: str = "en") -> str:
        return self.assistant.composer.speaking(language).referral_text(summary)

    def previous_referral(self, conversation_id: str, department_id: str, contact: str,
                          idempotency_key: str) -> Referral | None:
        """The referral this request already made, if it is a retry: a retry is answered, never counted
        against the limits. Keys are scoped to their conversation, so a key tells nothing about others."""
        return self.store.referral_by_key(scoped_key(conversation_id, idempotency_key),
                                          referral_request_hash(conversation_id, department_id, contact))

    def refer(self, conversation_id: str, department_id: str, contact: str, idempotency_key: str) -> tuple[Referral,
                                                                                                           bool]:
        """Send the summary to the department's hospital; the same key returns the first referral again,
        even after the conversation itself was deleted."""
        check_plain_text("contact", contact)
        check_plain_text("department_id", department_id)
        if any(mark in contact for mark in CONTACT_MARKUP):
            raise Invalid("contact", "contact: an e-mail address or messaging id has no < > \" ` or \\; please "
                                     "type it without them")
        existing = self.previous_referral(conversation_id, department_id, contact, idempotency_key)
        if existing is not None:
            return existing, False
        conv = self.conversation(conversation_id).conversation
        summary = self.referral_summary(conv, department_id)
        referral, created = self.store.add_referral(scoped_key(conversation_id, idempotency_key),
                                                    referral_request_hash(conversation_id, department_id, contact),
                                                    conversation_id, summary.hospital_id, department_id, contact,
                                                    summary.model_dump())
        log.info("referral %s~ to %s %s", referral.id[:8], referral.hospital_id, "created" if created else "repeated")
        return referral, created

    # --- the hospital's inbox -------------------------------------------------------------------------
    def hospital_for_key(self, key: str) -> str | None:
        return self.store.hospital_for_key(key)

    def inbox(self, hospital_id: str, status: str | None = None, limit: int | None = None,
              offset: int = 0) -> list[Referral]:
        return self.store.referrals(hospital_id, status, limit, offset)

    def inbox_size(self, hospital_id: str, status: str | None = None) -> int:
        return self.store.count_referrals(hospital_id, status)

    def set_status(self, hospital_id: str, referral_id: str, status: str) -> Referral:
        referral = self.store.set_referral_status(hospital_id, referral_id, status)
        if referral is None:
            raise NotFound(f"no referral '{referral_id}' in this hospital's inbox")
        return referral
