"""Schema migrations of the state store, owned by Alembic.

Every change to syncd's tables is a revision in ``versions/``; :func:`syncd.schema.ensure_schema`
brings a database to the revision this syncd needs (or says which command does), so an upgrade
keeps the audit history, the pending outbox and every rep-edit hold.
"""
