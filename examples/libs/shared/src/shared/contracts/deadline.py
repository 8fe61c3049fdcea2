"""The caller's time left, sent along on every call between services.

The HTTP clients put the milliseconds left of their deadline in this header; a data service that
honours it (``pg_data_service`` sets its statement timeout from it) stops working for a caller
that has stopped waiting, so retries cannot pile up copies of one slow query.
"""

TIMEOUT_HEADER = "X-Request-Timeout-Ms"
