"""Live metrics: collection, rollups, the live WebSocket, chart queries and Prometheus exposition."""
