"""Storage: the SQLite store (schema, migrations), media files, retention.
"""
