"""Cloud SDK code: credentials, pre-flight checks and read-backs, per cloud."""
