"""One router per feature; ``api.main`` only assembles them."""
