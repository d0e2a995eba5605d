"""Domain rules: no I/O, no framework, no SQL. Time and randomness are passed in."""
