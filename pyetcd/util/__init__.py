"""Small helpers shared by the server, the client, the ctl and the tools:
Go durations, key ranges, byte sizes, TLS files.  They import nothing from
the rest of pyetcd, so every layer may use them."""
