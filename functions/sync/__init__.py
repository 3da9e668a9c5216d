"""``sync``: a device's sync broadcasts (clipboard, files, app state) to the user's other
devices, through the same per-device queue that carries commands."""
