"""Start the web app (`make run`): HOST, PORT and WORKERS (default 1) from the environment.

The app itself (routes, pages, widget, inbox) is `assistant.web.app`; this file only serves it.
"""

from __future__ import annotations

import logging
import logging.config
import os

from assistant.build import build_engine
from assistant.datafile import START_REFUSED_EXIT_CODE, DataFileError, first_line
from assistant.settings import Settings
from assistant.store.integrity import StoreDamaged

log = logging.getLogger("app")


def main() -> None:
    import uvicorn

    from assistant.web.app import factory, server_options
    from assistant.web.security import LOG_CONFIG

    logging.config.dictConfig(LOG_CONFIG)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "7860"))
    workers = int(os.environ.get("WORKERS", "1"))
    # each worker process's model gets its share of the cores: two workers with a thread per core each would
    # run four threads on two cores and slow each other down
    os.environ.setdefault("CARE_TORCH_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    # A broken data file refuses the start with one line naming the file and field: never a half-loaded
    # assistant. One worker loads here, building the index if the knowledge changed; several load in their
    # own processes, so the engine is built once here first (knowledge checked, index built) and the
    # workers only reuse the index instead of racing to build it.
    try:
        if workers > 1:
            build_engine(Settings())
            app = "assistant.web.app:factory"
        else:
            app = factory()
    except (DataFileError, StoreDamaged) as error:
        log.error("start refused: %s", first_line(error))
        raise SystemExit(START_REFUSED_EXIT_CODE) from None
    log.info("serving on http://%s:%d with %d worker(s)", host, port, workers)
    uvicorn.run(app, factory=workers > 1, host=host, port=port, workers=workers, **server_options(Settings()))


if __name__ == "__main__":
    main()
