"""A test kit, as trio.testing is one: the link emulator and the wheel maker. Used by the
tests, the benchmarks and `segfetch emulate` / `demo`."""
