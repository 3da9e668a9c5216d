"""The apps function: app sessions from lifecycle events, screen-off and locked time left out,
and each local day's usage summed up."""
