"""What makes a contact a member of a segment, and the one writer of membership changes.

Below both `contacts` and `segments`: a contact write reports its change here, and
segments are defined with the filters defined here, so neither package imports the
other through it. Imports nothing above the database layer.
"""
