"""Generated from proto/pyetcdpb/ by proto/generate.py; never edit."""
