"""``face_emotion``: the emotion on each face of a camera photo or screenshot, from the
face_emotion model server."""
