"""Properties over generated input: the engine always answers, emergencies survive noise, the API never 500s.

Hypothesis runs derandomized with bounded examples, so the suite is repeatable and its time is bounded;
schemathesis generates requests from our own OpenAPI document.
"""

from __future__ import annotations

import json
import unicodedata

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from assistant.build import build_assistant
from assistant.flow import Assistant
from assistant.reply import Reply
from assistant.settings import PROJECT_ROOT
from assistant.text import LOOK_ALIKES, normalize
from assistant.web.app import create_app

BOUNDED = settings(max_examples=120, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

CODE = st.sampled_from([
    "def f(x):\n    return x ** 2", "SELECT * FROM users; DROP TABLE referrals;--", "{{ 7*7 }} ${jndi:ldap://x}",
    "<script>alert(1)</script>", "```python\nimport os\nos.system('rm -rf /')\n```", "\\x00\\u202e\u202egnp.exe",
])
ANY_TEXT = st.one_of(
    st.text(max_size=300),  # any unicode: scripts, combining marks, RTL, emoji
    st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), max_size=50),
    st.text(alphabet="我的父亲多发性骨髓瘤复发 myeloma relapsed CAR-T 123 ", max_size=120),
    st.text(min_size=3_000, max_size=9_000),  # longer than the limit: the engine cuts, the API refuses
    CODE,
    st.just(""),
)
EMERGENCIES = [
    "I have crushing chest pain right now",
    "my face is drooping and I can't lift my arm since 20 minutes",
    "I want to kill myself tonight",
    "my 2 week old baby has a fever of 38.5",
    "he is not breathing and his lips are blue",
    "she took a whole bottle of sleeping pills an hour ago",
]
# noise that cannot spell a negation or a time in the past: symbols, digits, emoji and Greek
NOISE = st.text(alphabet=st.characters(categories=("So", "Sm", "Nd"), exclude_characters="\u0000")
                | st.sampled_from(list("αβγδεζηθλμπσω ")), max_size=80)


@pytest.fixture(scope="module")
def assistant(engine) -> Assistant:
    return build_assistant(engine=engine)


@pytest.fixture(scope="module")
def plumbing_assistant(fake_engine) -> Assistant:
    """Whether any text gets a Reply does not depend on meaning: the hashing embedder answers it quickly."""
    return build_assistant(engine=fake_engine)


@BOUNDED
@given(text=ANY_TEXT)
def test_any_text_gets_a_reply_never_an_exception(plumbing_assistant: Assistant, text: str) -> None:
    assistant = plumbing_assistant
    conv = assistant.start()
    reply = assistant.reply(conv, text)
    assert isinstance(reply, Reply) and reply.text.strip()
    follow_up = assistant.reply(conv, "tell me more about the first one")  # the state it left is usable
    assert isinstance(follow_up, Reply)


@BOUNDED
@given(before=NOISE, phrase=st.sampled_from(EMERGENCIES), after=NOISE)
def test_an_emergency_inside_noise_is_still_caught(assistant: Assistant, before: str, phrase: str,
                                                   after: str) -> None:
    reply = assistant.reply(assistant.start(), f"{before}. {phrase}. {after}")
    assert reply.triage == "emergency" and reply.recommendations == []


# --- text that cannot hide a word ---------------------------------------------------------------------------
SAFETY_SENTENCES = [json.loads(line) for line in
                    (PROJECT_ROOT / "tests" / "data" / "safety_families.jsonl").read_text("utf-8").splitlines()]
EMERGENCY_SENTENCES = [row["text"] for row in SAFETY_SENTENCES if row["level"] == "emergency"]
FORMAT_CHARACTERS = [chr(code) for code in range(0x110000) if unicodedata.category(chr(code)) == "Cf"]
LOOK_ALIKE_OF: dict[str, list[str]] = {}  # Latin letter -> letters of other scripts Unicode says look like it
for code, latin in LOOK_ALIKES.items():
    if not unicodedata.normalize("NFKC", chr(code)).isascii():  # NFKC comes first: "Ｉ" is "I", not a look-alike
        LOOK_ALIKE_OF.setdefault(latin, []).append(chr(code))


@st.composite
def hidden_in(draw: st.DrawFn, text: str) -> str:
    """The text with format characters slipped in and some Latin letters swapped for look-alikes."""
    letters = list(text)
    for position in sorted(draw(st.lists(st.integers(0, len(text)), min_size=1, max_size=4)), reverse=True):
        letters.insert(position, draw(st.sampled_from(FORMAT_CHARACTERS)))
    swappable = [i for i, letter in enumerate(letters) if letter in LOOK_ALIKE_OF]
    if swappable:
        for i in draw(st.lists(st.sampled_from(swappable), max_size=3, unique=True)):
            letters[i] = draw(st.sampled_from(LOOK_ALIKE_OF[letters[i]]))
    return "".join(letters)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(data=st.data(), plain=st.sampled_from(EMERGENCY_SENTENCES))
def test_no_invisible_character_or_look_alike_letter_changes_what_the_engine_reads(data: st.DataObject,
                                                                                   plain: str) -> None:
    """Safety, understanding and storage all start from `normalize`: equal there means equal everywhere."""
    hidden = data.draw(hidden_in(plain))
    assert normalize(hidden) == normalize(plain), hidden


def hidden_the_same_way(plain: str) -> str:
    """One fixed variant: a soft hyphen between the first letters, a Cyrillic "е" for the first "e",
    zero-width spaces after the first two spaces."""
    return "\u00ad".join(plain[:3]) + plain[3:].replace("e", "\u0435", 1).replace(" ", " \u200b", 2)


def test_every_emergency_sentence_of_the_safety_data_is_still_one_with_characters_hidden_in_it(engine) -> None:
    """The whole triage, classifier included, on every sentence: the property above, end to end."""
    caught = [plain for plain in EMERGENCY_SENTENCES if engine.safety.triage(engine.read(plain)).is_emergency]
    missed = [plain for plain in caught
              if not engine.safety.triage(engine.read(hidden_the_same_way(plain))).is_emergency]
    assert len(caught) > 100 and missed == []


@pytest.fixture(scope="module")
def api_operations(make_service) -> list:
    """Our OpenAPI document, read through the app the way a client would read it."""
    api = schemathesis.openapi.from_asgi("/openapi.json", create_app(make_service()))
    return [result.ok() for result in api.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_the_schema_can_describe_or_bend_gets_a_server_error(api_operations: list,
                                                                       mode: GenerationMode) -> None:
    assert len(api_operations) >= 8
    fuzzed = 0
    for operation in api_operations:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            response = case.call()
            assert response.status_code < 500, (f"{case.method} {case.formatted_path} {case.body!r}: "
                                                 f"{response.status_code} {response.text[:300]}")

        try:
            call()
            fuzzed += 1
        except Unsatisfiable:  # free-text path parameters and no body: nothing that can be made invalid
            assert mode is GenerationMode.NEGATIVE
    assert fuzzed == len(api_operations) if mode is GenerationMode.POSITIVE else fuzzed >= 3
