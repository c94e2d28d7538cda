"""Generated from proto/authpb/ by proto/generate.py; never edit."""
