"""The SQLite store: schema, the single writer, and the read-only queries shared by app, api and reports."""
