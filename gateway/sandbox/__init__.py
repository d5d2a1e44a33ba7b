"""The sandbox: the made-up enterprises of ``enterprises.toml`` and a ready-to-run data directory."""
