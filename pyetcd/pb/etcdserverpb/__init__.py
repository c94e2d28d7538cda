"""Generated from proto/etcdserverpb/ by proto/generate.py; never edit."""
