"""Where conversations, referrals and inbox keys are kept (SQLite or PostgreSQL), with its migrations."""
