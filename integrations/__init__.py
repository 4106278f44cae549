"""Plain clients for the outside world (trackers, publishing). No Temporal imports here."""
