"""Generated from proto/leasepb/ by proto/generate.py; never edit."""
