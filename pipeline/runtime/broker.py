"""Which broker a process uses, and where that choice came from.

In order: ``$PIPELINE_BROKER_URL``, ``$CELERY_BROKER_URL``, the embedded Redis
whose URL ``pipeline up`` wrote to ``<data dir>/redis.url``, else Redis on
127.0.0.1:6379. A process started outside the folder that holds the URL file
would silently take the last one: the choice therefore carries its source,
which ``pipeline check`` prints and every process logs once when it first
connects, and a URL file whose server is gone is an error naming the file,
not a long wait on a dead port.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.errors import ServiceError
from pipeline.runtime.embedded import (
    DEFAULT_BROKER_URL,
    URL_FILE,
    answers,
    configured_broker_url,
    data_dir,
    read_url_file,
)

#: Seconds to wait for the embedded server a URL file names before calling it gone.
URL_FILE_TIMEOUT = 0.5


@dataclass(frozen=True)
class BrokerChoice:
    """A broker URL and, in words, where it came from."""

    url: str
    source: str

    @property
    def is_default(self) -> bool:
        """Nothing was configured: the built-in default URL is used."""
        return self.source.startswith("the default")


def _env_choice() -> BrokerChoice | None:
    url = configured_broker_url()
    if url is None:
        return None
    var = "PIPELINE_BROKER_URL" if os.environ.get("PIPELINE_BROKER_URL") else "CELERY_BROKER_URL"
    return BrokerChoice(url, f"${var}")


def choose_broker() -> BrokerChoice:
    """The broker of this process and its source.

    Raises:
        ServiceError: the URL file of an embedded Redis names a server that does
            not answer (its ``pipeline up`` has stopped), naming the file.
    """
    chosen = _env_choice()
    if chosen is not None:
        return chosen
    directory = data_dir()
    path = os.path.join(directory, URL_FILE)
    url = read_url_file(directory)
    if url is not None:
        if not answers(url, timeout=URL_FILE_TIMEOUT):
            raise ServiceError(
                f"{path} names the embedded Redis {url}, which does not answer (the "
                "`pipeline up` that started it has stopped): run `pipeline up` again, delete "
                "that file, or set PIPELINE_BROKER_URL")
        return BrokerChoice(url, f"the embedded Redis named in {path}")
    return BrokerChoice(DEFAULT_BROKER_URL,
                        f"the default: no $PIPELINE_BROKER_URL or $CELERY_BROKER_URL, and no "
                        f"embedded Redis in {directory}")


def describe(url: str) -> str:
    """Where *url*, an app's broker URL, came from (without checking that it answers)."""
    chosen = _env_choice()
    if chosen is not None and chosen.url == url:
        return chosen.source
    path = os.path.join(data_dir(), URL_FILE)
    if read_url_file(data_dir()) == url:
        return f"the embedded Redis named in {path}"
    if url == DEFAULT_BROKER_URL:
        return (f"the default: no $PIPELINE_BROKER_URL or $CELERY_BROKER_URL, and no "
                f"embedded Redis in {data_dir()}")
    return "the app's own broker_url setting"
