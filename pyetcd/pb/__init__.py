"""Generated protobuf code (from proto/ by proto/generate.py); never hand-edited."""
