"""The SQLite store and everything that reads or spells what it holds.

names (the basic rules), schema, writer (the single writer), packing (the packed audience format),
read (the pandas-free read core the API uses), queries (its pandas adapters for the app and reports),
format (the one spelling of a score), snapshot (the serving arrays the API maps), export (audience CSVs).
"""
