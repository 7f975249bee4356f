"""REST handlers, registered by GitHub operation id (see `context.handles`)."""
