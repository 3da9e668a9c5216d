"""``vision``: what a camera photo or a screen frame shows and says (caption, text, objects,
scene), from the vlm model server."""
