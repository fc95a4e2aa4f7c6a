"""The broker's key names of the default queue, as the tests' app lays them out."""

from __future__ import annotations

from pipeline.keys import wake_key

QUEUE = "pipeline"
#: The queue's list (its most urgent level), under the app's key prefix.
HEAD = "{pipeline}:pipeline"
#: The list of the "normal" level (kombu's priority step 6).
NORMAL_LIST = HEAD + "\x06\x166"
WAKE = wake_key(HEAD)
UNACKED = "{pipeline}:unacked"
INDEX = "{pipeline}:unacked_index"
