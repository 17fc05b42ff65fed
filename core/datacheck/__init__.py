"""Data validation engine: type-normalized SQL, row comparison, segment checksums down to rows."""
