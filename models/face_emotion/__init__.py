"""``face_emotion``: faces found with OpenCV's Haar cascades, the emotion on each from a
transformers image classifier (KServe predictor)."""
