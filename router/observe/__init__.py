"""What operators see of every request: metrics, the access log, tracing and the dashboard, fed at its end."""
