"""``motion``: per-device sliding windows over accelerometer samples → windowed features,
activity classes (still, walking, running, cycling, vehicle) and significant motion."""
