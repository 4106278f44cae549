"""Pure domain logic: models, policies, scheduling, validation and rendering. No I/O, no clock."""
