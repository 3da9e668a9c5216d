"""The power function: charge rate, time to empty or full, charging sessions and daily
battery summaries from a device's power readings."""
