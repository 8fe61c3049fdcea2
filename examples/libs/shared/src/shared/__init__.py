"""The library every service of the reference system shares.

Business services reach data only through the typed clients here; data services
use the same problem-details, settings and observability helpers so that every
service speaks one dialect on the wire.
"""
