"""Generated from proto/v3lockpb/ by proto/generate.py; never edit."""
