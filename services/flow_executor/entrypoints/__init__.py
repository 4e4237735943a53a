"""Where the flow executor meets the outside: `kafka` declares its topics."""
