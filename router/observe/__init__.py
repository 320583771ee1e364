"""What operators see: the access log (and, as they land, metrics, tracing and the dashboard)."""
