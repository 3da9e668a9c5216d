"""``vad``: voice activity detection (Silero VAD) on raw microphone audio, per device."""
