"""The campaign store: the only code that reads or writes campaign files
(location, campaign store, rows, snapshots, quarantine, reading, results)."""
