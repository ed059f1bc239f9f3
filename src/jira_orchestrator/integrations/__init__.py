"""Layer 5: connections to outside systems (Jira Cloud). Needs the ``web`` extra."""
