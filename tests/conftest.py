"""Shared fixtures: real objects only (the real knowledge, the packaged model, Chroma in a temp dir).

The whole suite runs with the network closed to everything but loopback, so a test that
passes here also passes on a machine without internet.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.settings import PROJECT_ROOT, Settings, set_offline_environment

set_offline_environment()

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkBlocked(OSError):
    """Raised when code under test tries to leave the machine."""


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return True  # unix sockets


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise NetworkBlocked(f"network access blocked in tests: {address}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise NetworkBlocked(f"network access blocked in tests: {address}")
    return _real_connect_ex(self, address)


@pytest.fixture(scope="session", autouse=True)
def block_network() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("session")


@pytest.fixture(scope="session")
def settings(session_dir: Path) -> Settings:
    return Settings(data_dir=session_dir / "data")


@pytest.fixture(scope="session")
def embedder():
    """The packaged MiniLM: for every test whose answer depends on meaning (ranking, triage, scope)."""
    from assistant.embedder import PackagedMiniLM

    return PackagedMiniLM()


@pytest.fixture(scope="session")
def engine(settings: Settings, embedder):
    from assistant.build import build_engine

    return build_engine(settings, embedder)


@pytest.fixture(scope="session")
def fake_embedder():
    """The hashing stand-in: for tests of plumbing (index lifecycle, robustness, storage), never of meaning.
    It builds an index in a second or two where the model needs fifteen."""
    from assistant.embedder import HashingEmbedder

    return HashingEmbedder()


FAKE_TRAINING_SHARE = 8  # the fake engine learns from every 8th line of the training data


@pytest.fixture(scope="session")
def fake_knowledge(session_dir: Path) -> Path:
    """The real knowledge with an eighth of its training lines, for the fake engine: plumbing tests need models of
    the right shape, not good ones, and fitting the kernels to the hashed vectors of every line took 112 s of a
    suite that must stay under 15 minutes (an eighth: 6 s). Servers started for those tests read it too, so they
    find the fake engine's models instead of training their own."""
    from assistant.learned import CALM_SENTENCES_FILE

    target = session_dir / "fake-knowledge"
    shutil.copytree(PROJECT_ROOT / "knowledge", target, ignore=shutil.ignore_patterns("vectors-*.npz"))
    training = target / "training"
    for path in [*training.glob("*.jsonl"), *(training / "cases").glob("*.jsonl"), training / CALM_SENTENCES_FILE]:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[::FAKE_TRAINING_SHARE]), encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def fake_engine(session_dir: Path, fake_knowledge: Path, fake_embedder):
    from assistant.build import build_engine

    return build_engine(Settings(data_dir=session_dir / "fake-data", knowledge_dir=fake_knowledge), fake_embedder)


@pytest.fixture(scope="session")
def kb(engine):
    return engine.kb


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    """A writable copy of the real knowledge base, for tests that break or change a file."""
    target = tmp_path / "knowledge"
    shutil.copytree(PROJECT_ROOT / "knowledge", target)
    return target


@pytest.fixture(scope="session")
def make_service(engine, tmp_path_factory: pytest.TempPathFactory):
    """A CareService over the session engine and a fresh SQLite file (or `database_url=`); settings by keyword.

    Rate limits are off unless a test sets them: many tests start conversations from one address.
    """
    from assistant.build import build_assistant, build_service
    from assistant.service import CareService
    from assistant.settings import RateLimits

    def build(**overrides: object) -> CareService:
        fresh_sqlite = f"sqlite:///{tmp_path_factory.mktemp('db') / 'care.db'}"
        settings = engine.settings.model_copy(update={"rate_limits": RateLimits(enabled=False),
                                                      "database_url": fresh_sqlite, **overrides})
        return build_service(settings, assistant=build_assistant(settings, engine=engine))

    return build
