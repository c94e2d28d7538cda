"""Generated from proto/mvccpb/ by proto/generate.py; never edit."""
