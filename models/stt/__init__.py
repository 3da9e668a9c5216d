"""``stt``: Kyutai speech-to-text (moshi) as a KServe predictor: many speech segments
stepped together in one batch, words with start and end times out."""
