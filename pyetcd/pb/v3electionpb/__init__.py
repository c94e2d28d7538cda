"""Generated from proto/v3electionpb/ by proto/generate.py; never edit."""
