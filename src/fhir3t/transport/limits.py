"""Default limits of the HTTP client (a module of its own so the CLI can show them without importing requests)."""

#: Seconds, wall clock, per request attempt (slow-loris included).
DEFAULT_TIMEOUT = 120.0
CONNECT_TIMEOUT = 10.0
#: A run sends at most this many requests unless told otherwise (a loop cannot hammer a hospital's server).
DEFAULT_MAX_REQUESTS = 100_000
#: A search or $everything follows at most this many pages.
DEFAULT_MAX_PAGES = 1_000
#: A JSON answer larger than this is refused unread (a 2 GB answer must not take the memory).
DEFAULT_MAX_BODY = 256 * 1024 * 1024
#: Error bodies are only read for their OperationOutcome: the rest is dropped.
ERROR_BODY_LIMIT = 1024 * 1024
#: A download must deliver this much per `timeout` to stay alive (a trickle is a stall).
PROGRESS_BYTES = 1024 * 1024
#: Bulk export files larger than this are refused (an endless stream must not fill the disk).
DEFAULT_MAX_FILE = 10 * 1024 ** 3
