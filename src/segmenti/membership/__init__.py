"""What makes a contact a member of a segment, and the one writer of membership changes.

Below both `contacts` and `segments`: a contact write reports its change here, and
segments are defined with the filters defined here, so neither package imports the
other through it. Imports nothing above the database layer.

Importing the package registers the recorder of membership events (events.py) with the
owner of membership (counts.py): every process that writes contacts or segments
imports it, so no write path can forget to record its events.
"""

from segmenti.membership import events as _events  # noqa: F401 (registers the recorder)
