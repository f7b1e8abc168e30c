"""Data for arvideo: the built-in shapes world (`shapes`) and the captioned folder format (`folder`)."""
