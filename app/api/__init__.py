"""HTTP only: decode, validate, call a room below, encode."""
