"""Temporal activities: thin adapters from the workflows to integrations/, errors mapped once."""
