"""The sans-IO core: request preparation, the stream pipeline (bytes in, steps out) and
retry decisions. Nothing here performs I/O, sleeps or knows a transport."""
