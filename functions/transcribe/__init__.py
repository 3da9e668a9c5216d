"""``transcribe``: words with their times for each speech segment (the stt model server)."""
