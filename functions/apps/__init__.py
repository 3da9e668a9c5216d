"""The apps function: app sessions from lifecycle events, screen-off and locked time left out."""
