"""The SQLite store: all its SQL, its group-commit writer and its migrations."""
