"""The deployable pipeline app and its task modules."""
